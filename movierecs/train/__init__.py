"Layer 4: training runs: the notebook's experiments as data, saving and loading a trained model, training on several processes."
