"A packaged, faithful reproduction of fastai's collaborative filtering on MovieLens 100k."
__version__ = '0.1.0'

from .data import *
from .fast import *
from .models import *
from .learners import *
from .rankers import *
from .experiments import *
from .analysis import *
from .evaluate import *
from .evaluate import __all__ as _evaluate_all  # the module's name is taken by its function `evaluate`
from .saving import *
from .feedback import *
from .baselines import *
from .ranking import *
from .foldin import *
from .cli import default_learner

__all__ = (data.__all__ + fast.__all__ + models.__all__ + learners.__all__ + rankers.__all__ + experiments.__all__ + analysis.__all__
           + _evaluate_all + saving.__all__ + feedback.__all__ + baselines.__all__ + ranking.__all__ + foldin.__all__ + ['default_learner'])
