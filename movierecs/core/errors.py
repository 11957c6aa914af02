"The errors movierecs raises for bad data, model files, training and processes: one home for each."
__all__ = ['DataError', 'NaNLossError', 'ModelFileError', 'DistributedError']

class DataError(ValueError):
    "ML-100k data or a ratings frame that is missing, corrupt or malformed."

class NaNLossError(FloatingPointError):
    "Training produced a loss that is NaN or infinite."

class ModelFileError(ValueError):
    "A saved model that is missing, corrupt, tampered with, or does not fit its description."

class DistributedError(RuntimeError):
    "A training process failed without an error of its own to show (it was killed, or the process group broke)."
