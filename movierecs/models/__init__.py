"Layer 3: every model as a fastai `Learner` factory in one registry (`get_learner(name, dls)`), and the closed-form top-N baselines."
# The registry's index names every built-in model; a family's module (collab, autoencoders, rankers, sequential) is imported, and
# registers its factories, when one of its learners is asked for: `list_models()` and `import movierecs.models.parts` load neither
# torch nor fastai.
