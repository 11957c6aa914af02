"Layer 3: every model as a fastai `Learner` factory in one registry (`get_learner(name, dls)`), and the closed-form top-N baselines."
# Importing the package registers every family's models, whichever module a caller imports first (timm's way).
from . import collab, autoencoders, rankers  # noqa: F401
