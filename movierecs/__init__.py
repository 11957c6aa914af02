"A packaged, faithful reproduction of fastai's collaborative filtering on MovieLens 100k."
__version__ = '0.1.0'

import importlib

# The public face: each name, by the module that defines it. A name is imported on first use (LensKit's lazy face), so
# `import movierecs` loads nothing heavy and a name costs only its own module's imports. The layers, bottom to top, are
# core, data, engine, models, train, evaluation, recommendation, app and studies (docs/architecture.md); tests/test_layers.py
# checks that this table holds each listed module's `__all__`.
_FACE = {
    'core.errors': 'DataError NaNLossError ModelFileError DistributedError',
    'data.ml100k': 'ML_100K_SHA256 SPLITS ENV_VAR data_source zip_members read_file load_udata load_movies load_split',
    'data.movielens': 'load_ratings stratified_split synthetic_ratings',
    'data.temporal': 'ITEM_COLS DROPPED TimeSplit time_order history_position time_split leave_last_out last_fraction',
    'data.releases': 'Release DATASETS GROUPLENS_URL list_datasets dataset_source load_dataset',
    'engine.loaders': 'dataloaders check_dls epoch_rows shuffle_stats',
    'engine.tensors': 'VAL_BS TensorDataLoader fast_dataloaders',
    'engine.fast': 'FlatMSE FastAdam',
    'engine.fastai_glue': 'FASTAI_RANGE FASTAI_LOADER_ATTRS TensorLoader FastLearner make_fast',
    'engine.sparse': 'WINDOW SparseAdam SparseFlush make_sparse sparse_embeddings dot_rows',
    'engine.lbfgs': 'lbfgs LBFGSWrapper LBFGSStep',
    'engine.sequences': 'PAD MAX_LEN WINDOWS histories window windows_of sequence_dataloaders',
    'engine.feedback': 'RELEVANT row_weights user_rows rows_dataloaders',
    'models.base': 'RaiseOnNaN',
    'models.registry': 'TASKS register list_models model_task describe_model trains_by_lbfgs get_learner check_model',
    'models.collab': 'DotProduct DotProductBias create_params DotProductBiasParams CollabNN DotProductBiasImplicit Ensemble dot dot_raw '
                     'dot_bias dot_bias_params collab collab_nn collab_emb_nn svdpp ensemble EnsembleMSE',
    'models.autoencoders': 'rating_matrix full_batch AutoencoderLoss AutoRec KernelLayer GLocalK FineTuneAfter autorec glocal_k',
    'models.rankers': 'MultinomialNLL MultDAE mult_dae',
    'models.sequential': 'SequenceCE causal_mask SASRecBlock SASRec sasrec',
    'models.baselines': 'TopN Popular ItemKNN EASE RecentPopular Markov BASELINES TIME_BASELINES interactions',
    'train.runs': 'USER_BAR SLACK SPREAD_K MIN_SEEDS SEEDS_CSV spread_bars SCHEDULES GROUPS Experiment EXPERIMENTS group_names '
                  'get_experiment RankingRun RANKERS DEFAULT_RANKER NEXT_RUNS',
    'train.experiments': 'LossTable EpochLines train_model train_experiment run_experiment',
    'train.saving': 'save load',
    'evaluation.rating': 'RATING_RANGE split_frames split_ratings item_column unseen scores predict evaluate fit_on record',
    'evaluation.blend': 'CARVE carve EpochAverage member_predictions Blend fit_weights evaluate_blend',
    'evaluation.nextitem': 'next_split next_carve_out ListTopN evaluate_next',
    'evaluation.topn': 'KS METRICS top_k ranking_metrics carve_out LearnerTopN fit_topn evaluate_topn '
                       'tune_topn',
    'recommendation.analysis': 'movie_factors movie_bias biases similar_movies similar_users recommend pca_map loss_curves',
    'recommendation.foldin': 'MAX_RATINGS MIN_LAMBDA FOLDIN_RULES FOLDIN_RULE parse_ratings fold_in foldin_prior foldin_lambdas '
                             'recommend_for',
    'recommendation.nextitem': 'MAX_HISTORY parse_history recommend_next',
    'app.defaults': 'default_learner',
}
_HOME = {n: m for m, names in _FACE.items() for n in names.split()}
__all__ = list(_HOME)

def __getattr__(name):
    m = _HOME.get(name)
    if m is None: raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f'{__name__}.{m}'), name)
    globals()[name] = value
    return value

def __dir__(): return sorted({*globals(), *_HOME})
