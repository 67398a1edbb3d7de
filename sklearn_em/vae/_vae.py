"""Variational auto-encoder as a scikit-learn transformer."""

import copy
import time
import warnings
from contextlib import nullcontext
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_array, check_random_state, gen_batches
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.sparsefuncs import mean_variance_axis
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import ThreadpoolController

from ._elbo import (
    _allocate_buffers,
    _elbo,
    _elbo_loss_and_grad,
    _encode,
    _importance_weighted_bound,
)
from ._likelihoods import _decoder_mean
from ._network import (
    ACTIVATIONS,
    _allocate_activations,
    _forward_pass,
    _glorot_uniform,
    _unflatten,
)
from ._optimizers import AdamOptimizer
from ._random import _keyed_standard_normal, _row_keys

# Largest number of floats in one layer's buffer when scoring or transforming
# in chunks.
_CHUNK_FLOATS = 2**22

# Training runs BLAS single-threaded while the largest matrix product of a
# step has fewer multiply-adds than this (2**23, about 8 million): for such
# products waking and synchronising threads costs more than it saves, and
# much more when another process keeps a core busy (the default network on
# the 8x8 digits, 2 million: see benchmarks/bench_vae_small.py). Larger
# products use BLAS's threads: the 784-400 layer of an MNIST VAE with
# minibatches of 128 (40 million) took 0.33 s per epoch on two threads
# against 0.45 s on one on a quiet 2-core machine, as PyTorch uses both
# (benchmarks/bench_vae_torch.py); on a machine whose other core is busy,
# limit the threads with threadpoolctl.
_SMALL_PRODUCT = 2**23

# Largest magnitude of the data, as a fraction of the square root of the
# dtype's largest value: the Gaussian likelihood squares residuals and
# scales them by precisions up to exp(-LOG_VAR_MIN), and the encoder sums
# products over the features; beyond this the arithmetic of a step can
# overflow.
_MAGNITUDE_FRACTION = 2.0**-24

_threadpool_controller = None


def _single_threaded_blas():
    """Context manager limiting BLAS to one thread, restoring it on exit."""
    global _threadpool_controller
    if _threadpool_controller is None:
        _threadpool_controller = ThreadpoolController()
    return _threadpool_controller.limit(limits=1, user_api="blas")


class _IntervalNotBool(Interval):
    """An ``Interval`` constraint that rejects bools, which are ints in Python."""

    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


def _check_count(value, name):
    """Validate a positive integer argument of a method."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(
            f"{name} must be a positive int, got {value!r} of type "
            f"{type(value).__name__}."
        )
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}.")
    return int(value)


def _check_random_state_argument(random_state, name="random_state"):
    """check_random_state for a method's argument, rejecting bools."""
    if isinstance(random_state, (bool, np.bool_)) or not (
        random_state is None
        or isinstance(random_state, (Integral, np.random.RandomState))
    ):
        raise TypeError(
            f"{name} must be None, an int or a numpy.random.RandomState "
            f"instance, got {random_state!r} of type {type(random_state).__name__}."
        )
    return check_random_state(random_state)


def _magnitude_limit(dtype):
    """Largest magnitude of the network's inputs in ``dtype``."""
    return float(np.sqrt(np.finfo(dtype).max)) * _MAGNITUDE_FRACTION


def _column_abs_max(X):
    """Largest magnitude of every column of dense or sparse X, float64.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)

    Returns
    -------
    abs_max : ndarray of shape (n_features,)
    """
    if sp.issparse(X):
        return np.asarray(abs(X).max(axis=0).toarray(), dtype=np.float64).ravel()
    return np.max(np.abs(X), axis=0, initial=0.0).astype(np.float64)


def _dense_rows(X, rows, out=None):
    """Rows of X as a dense array; sparse X is densified for these rows only.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)

    rows : slice or ndarray of int

    out : ndarray of shape (n_rows, n_features), default=None
        Buffer for the rows; a new array (or a view of dense X) if None.

    Returns
    -------
    X_rows : ndarray of shape (n_rows, n_features)
    """
    if sp.issparse(X):
        block = X[rows]
        return block.toarray() if out is None else block.toarray(out=out)
    if out is None or isinstance(rows, slice):
        return X[rows]
    return np.take(X, rows, axis=0, out=out)


class VAETransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Variational auto-encoder (VAE) for non-linear dimensionality reduction.

    The encoder ``q(z|x) = N(mu(x), diag sigma^2(x))`` and the decoder
    ``p(x|z)`` are multi-layer perceptrons; the decoder mirrors the hidden
    layers of the encoder and the prior is ``p(z) = N(0, I)``. Training
    maximises the evidence lower bound (ELBO) on ``ln p(x)`` (or the tighter
    importance-weighted bound, ``objective="iwae"``) by minibatch Adam, with
    the reparameterisation ``z = mu + sigma * eps``, ``eps ~ N(0, I)``, so
    that gradients flow through the latent draws.

    ``transform`` returns the posterior means ``mu(x)``, ``inverse_transform``
    decodes latent points, ``sample`` generates data, and ``score_samples``
    estimates ``ln p(x)`` from below. Pure NumPy: the forward and backward
    passes and the optimiser are written out; float32 input is trained and
    transformed in float32, and sparse input is densified one minibatch (or
    chunk) at a time.

    Read more in the :ref:`User Guide <vae_guide>`.

    Parameters
    ----------
    n_components : int, default=2
        Dimension of the latent space.

    hidden_layer_sizes : array-like of shape (n_layers,) or int, default=(256,)
        Units of the hidden layers of the encoder; the decoder uses them in
        reverse order. An empty tuple gives linear encoder and decoder.

    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Activation of the hidden layers.

    likelihood : {"gaussian", "bernoulli"}, default="gaussian"
        The decoder's distribution ``p(x|z)``.

        - "gaussian": the decoder outputs the mean, and every feature has a
          learned variance shared by all samples (``decoder_log_var_``),
          suited to any real-valued data of moderate scale (standardise it
          first, e.g. with :class:`~sklearn.preprocessing.StandardScaler`).
        - "bernoulli": the decoder outputs logits and ``ln p(x|z)`` is the
          negative binary cross-entropy, computed stably from the logits. X
          must lie in [0, 1] (binary data, or e.g. grey levels scaled to
          [0, 1]).

    elbo : {"analytic_kl", "entropy", "monte_carlo"}, default="analytic_kl"
        The ELBO estimator, in training (with ``objective="elbo"``) and in
        ``score_samples`` (with ``score_bound="elbo"``), averaged over the
        latent draws:

        - "analytic_kl": ``E_q[ln p(x|z)] - KL(q(z|x) || p(z))``, the KL
          divergence in closed form;
        - "entropy": ``E_q[ln p(x, z)] + H(q(z|x))``, the entropy in closed
          form;
        - "monte_carlo": ``E_q[ln p(x, z) - ln q(z|x)]``, all by Monte Carlo.

        All three have the same expectation; they differ in variance, which
        matters for the gradients. Each replaces closed-form terms of the
        previous one by Monte Carlo estimates, so while ``ln p(x|z)`` says
        little about ``z`` (early in training, or for collapsed latent
        dimensions) their variances increase in that order. But
        ``ln p(x, z) - ln q(z|x) = ln p(x) + ln p(z|x) - ln q(z|x)``: the
        "monte_carlo" form's variance vanishes as ``q(z|x)`` approaches the
        true posterior, and on a well-fitted model it is often the lowest.

    objective : {"elbo", "iwae"}, default="elbo"
        The training objective.

        - "elbo": the ELBO (estimator ``elbo``), averaged over
          ``n_mc_samples`` draws per sample.
        - "iwae": the importance-weighted bound
          ``ln 1/K sum_k p(x, z_k) / q(z_k|x)`` with ``K = n_mc_samples``
          draws (Burda et al., 2016): a tighter bound than the ELBO, which
          favours more active latent dimensions and a better ``ln p(x)`` at
          ``K`` times the decoder's cost per step. With ``K = 1`` it is the
          "monte_carlo" ELBO.

    n_mc_samples : int, default=1
        Latent draws per sample in every training step (the ``K`` of
        ``objective="iwae"``) and in the validation score of
        ``early_stopping``.

    beta : float, default=1.0
        Weight of the KL term in the training objective (beta-VAE; with
        ``objective="iwae"``, the weight of ``ln p(z) - ln q(z|x)`` in the
        log-weights). Values above 1 favour a factorised latent space, below
        1 a better reconstruction. ``score_samples`` and the validation score
        always use ``beta=1``.

    n_iter_kl_warmup : int, default=0
        Number of epochs of KL warm-up (as scvi-tools' ``n_epochs_kl_warmup``):
        the weight of the KL term grows linearly, step by step, from 0 to
        ``beta`` over the first ``n_iter_kl_warmup`` epochs. The encoder first
        learns codes that reconstruct the data before the prior pulls them
        together, which leaves fewer latent dimensions inactive (collapsed to
        the prior). The stopping criterion starts counting after the warm-up,
        as the training loss is not comparable while its weight changes.

    batch_size : int, default=128
        Size of the minibatches; clipped to the number of training samples.

    learning_rate : float, default=1e-3
        Step size of Adam.

    max_iter : int, default=200
        Maximum number of epochs (passes over the training data). Reaching
        it before the stopping criterion is met raises a
        :class:`~sklearn.exceptions.ConvergenceWarning`.

    tol : float, default=1e-4
        Tolerance, in nats per sample, of the stopping criterion: training
        stops when the training loss (or, with ``early_stopping``, the
        validation score) has not improved by at least ``tol`` for
        ``n_iter_no_change`` consecutive epochs.

    n_iter_no_change : int, default=10
        Number of epochs without improvement that stop training.

    early_stopping : bool, default=False
        Whether to hold out ``validation_fraction`` of the training data,
        score it after every epoch (its mean ELBO with ``beta=1``, or
        importance-weighted bound for ``objective="iwae"``, with
        ``n_mc_samples`` draws per sample, the same draws at every epoch),
        stop when the score stops improving, and restore the weights of the
        best epoch.

    validation_fraction : float, default=0.1
        Fraction of the training data held out when ``early_stopping`` is
        True.

    score_bound : {"elbo", "iwae"}, default="elbo"
        The lower bound on ``ln p(x)`` that ``score_samples`` (and so
        ``score``, and model selection with it) estimates for every sample,
        from ``n_score_draws`` latent draws ``z ~ q(z|x)``:

        - "elbo": the ELBO (estimator ``elbo``) averaged over the draws, an
          unbiased estimate of the ELBO;
        - "iwae": the importance-weighted bound with ``K = n_score_draws``,
          tighter than the ELBO and increasing towards ``ln p(x)`` with
          ``K``; its estimates are biased below the limit by a term that
          shrinks like ``1/K``.

        Either costs one encoder pass and ``n_score_draws`` decoder passes
        per sample.

    n_score_draws : int, default=200
        Latent draws per sample in ``score_samples``. Every sample has its
        own draws, so that the Monte Carlo noise of ``score`` averages out
        over the samples: with the default, a default model's ``score`` on
        300 held-out digits (a cross-validation fold) changes by under 0.1%
        between seeds (about 0.07% at most over 30 seeds; 0.16% with 50
        draws), at about 0.1 s per call. The noise shrinks like
        ``1 / sqrt(n_samples * n_score_draws)``.

    shuffle : bool, default=True
        Whether to shuffle the training data at every epoch.

    warm_start : bool, default=False
        Whether ``fit`` continues from the weights (and optimiser state) of
        the previous call instead of initialising anew.

    random_state : int, RandomState instance or None, default=None
        Determines the weight initialisation, the shuffling, the latent draws
        of training, the train-validation split, and the draws of
        ``score_samples`` and ``sample``. ``score_samples`` seeds its draws
        from ``random_state`` at every call (as
        :meth:`sklearn.mixture.GaussianMixture.sample` does): with an int it
        is reproducible, with None every call draws anew. Pass an int for
        reproducible results. See :term:`Glossary <random_state>`.

    verbose : int, default=0
        Whether to print, after every epoch, the training loss, the
        validation score (with ``early_stopping``), the KL weight during
        warm-up, and the time the epoch took.

    Attributes
    ----------
    encoder_coefs_ : list of ndarray
        ``encoder_coefs_[i]`` of shape ``(n_units[i], n_units[i + 1])``, the
        weights of the encoder's layer ``i``; the last layer outputs the
        means and the log-variances of ``q(z|x)``,
        ``2 * n_components`` units.

    encoder_intercepts_ : list of ndarray
        ``encoder_intercepts_[i]`` of shape ``(n_units[i + 1],)``.

    decoder_coefs_ : list of ndarray
        Weights of the decoder's layers, from ``n_components`` inputs to
        ``n_features_in_`` outputs (logits for ``likelihood="bernoulli"``,
        means of the standardised features for "gaussian").

    decoder_intercepts_ : list of ndarray
        Intercepts of the decoder's layers.

    decoder_log_var_ : ndarray of shape (`n_features_in_`,) or None
        Learned log-variance of every standardised feature for
        ``likelihood="gaussian"`` (the variance in X's units is
        ``exp(decoder_log_var_) * scale_**2``); None for "bernoulli".

    mean_ : ndarray of shape (`n_features_in_`,) or None
        For ``likelihood="gaussian"``, the mean of every feature in the data
        of the first fit: the network sees ``(X - mean_) / scale_``, which
        makes the codes independent of the magnitude of X. None for
        "bernoulli".

    scale_ : ndarray of shape (`n_features_in_`,) or None
        For ``likelihood="gaussian"``, the standard deviation of every
        feature in the data of the first fit (1 for constant features, as in
        :class:`~sklearn.preprocessing.StandardScaler`). None for
        "bernoulli".

    loss_ : float
        Training loss (mean negative ELBO or importance-weighted bound, in
        nats, with the KL term weighted by ``beta`` and the warm-up) of the
        last epoch.

    loss_curve_ : list of float
        Training loss of every epoch.

    best_loss_ : float or None
        Lowest training loss after the warm-up; None with
        ``early_stopping``.

    validation_scores_ : list of float or None
        Validation score (see ``early_stopping``) after every epoch, with
        ``early_stopping``; None otherwise.

    best_validation_score_ : float or None
        Highest validation score, with ``early_stopping``; None otherwise.

    n_iter_ : int
        Number of epochs run.

    t_ : int
        Number of training samples seen.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.decomposition.PCA : Linear dimensionality reduction.
    sklearn.neural_network.BernoulliRBM : Restricted Boltzmann machine.
    sklearn.neural_network.MLPRegressor : Multi-layer perceptron.

    Notes
    -----
    A ``fit`` or ``partial_fit`` that raises (invalid input, or training
    that diverges) leaves a previously fitted model as it was.

    Training limits BLAS to one thread while the matrix products of a step
    are small (as for the 8x8 digits), where threads cost more than they
    save; the setting is restored when training ends.

    References
    ----------
    D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.

    Y. Burda, R. Grosse and R. Salakhutdinov, "Importance Weighted
    Autoencoders", ICLR 2016.

    S. R. Bowman, L. Vilnis, O. Vinyals, A. M. Dai, R. Jozefowicz and S.
    Bengio, "Generating Sentences from a Continuous Space", CoNLL 2016 (KL
    warm-up).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_em import VAETransformer
    >>> X, _ = load_digits(return_X_y=True)
    >>> X = X / 16
    >>> vae = VAETransformer(n_components=2, hidden_layer_sizes=(32,),
    ...                      likelihood="bernoulli", n_iter_no_change=2,
    ...                      tol=0.1, random_state=0)
    >>> Z = vae.fit_transform(X)
    >>> Z.shape
    (1797, 2)
    >>> vae.inverse_transform(Z).shape
    (1797, 64)
    >>> vae.sample(3).shape
    (3, 64)
    >>> bool(vae.score(X) < 0)
    True
    """

    _parameter_constraints: dict = {
        "n_components": [_IntervalNotBool(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": [
            "array-like",
            _IntervalNotBool(Integral, 1, None, closed="left"),
        ],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "likelihood": [StrOptions({"bernoulli", "gaussian"})],
        "elbo": [StrOptions({"analytic_kl", "entropy", "monte_carlo"})],
        "objective": [StrOptions({"elbo", "iwae"})],
        "n_mc_samples": [_IntervalNotBool(Integral, 1, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "n_iter_kl_warmup": [_IntervalNotBool(Integral, 0, None, closed="left")],
        "batch_size": [_IntervalNotBool(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [_IntervalNotBool(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [_IntervalNotBool(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "score_bound": [StrOptions({"elbo", "iwae"})],
        "n_score_draws": [_IntervalNotBool(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(256,),
        activation="relu",
        likelihood="gaussian",
        elbo="analytic_kl",
        objective="elbo",
        n_mc_samples=1,
        beta=1.0,
        n_iter_kl_warmup=0,
        batch_size=128,
        learning_rate=1e-3,
        max_iter=200,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        score_bound="elbo",
        n_score_draws=200,
        shuffle=True,
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.likelihood = likelihood
        self.elbo = elbo
        self.objective = objective
        self.n_mc_samples = n_mc_samples
        self.beta = beta
        self.n_iter_kl_warmup = n_iter_kl_warmup
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.score_bound = score_bound
        self.n_score_draws = n_score_draws
        self.shuffle = shuffle
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------
    # Fitting

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the VAE to X by maximising the ELBO with minibatch Adam.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; in [0, 1] for ``likelihood="bernoulli"``. Sparse
            input is densified one minibatch at a time.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        return self._fit(X, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Run one epoch of minibatch Adam over X.

        The first call initialises the model; later calls continue from the
        current weights and optimiser state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; in [0, 1] for ``likelihood="bernoulli"``.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True.")
        return self._fit(X, incremental=True)

    def _fit(self, X, incremental):
        """Fit, restoring the previous state if anything raises."""
        saved = self._save_state()
        try:
            return self._fit_epochs(X, incremental)
        except Exception:
            self._restore_state(saved)
            raise

    def _save_state(self):
        """Copies of the fitted attributes and the state of the generator."""
        params = set(self._get_param_names())
        attributes = {
            name: copy.deepcopy(value)
            for name, value in vars(self).items()
            if name not in params and name != "_random_state"
        }
        rng = getattr(self, "_random_state", None)
        return attributes, rng, None if rng is None else rng.get_state()

    def _restore_state(self, saved):
        attributes, rng, rng_state = saved
        params = set(self._get_param_names())
        for name in list(vars(self)):
            if name not in params:
                delattr(self, name)
        vars(self).update(attributes)
        if rng is not None:
            rng.set_state(rng_state)
            self._random_state = rng

    def _fit_epochs(self, X, incremental):
        hidden_layer_sizes = self._hidden_layer_sizes()
        fitted = hasattr(self, "encoder_coefs_")
        first_call = not fitted or not (incremental or self.warm_start)
        if first_call:
            X = validate_data(
                self, X, accept_sparse="csr", dtype=[np.float64, np.float32]
            )
        else:
            X = self._validate_X(X)
        self._check_likelihood_support(X)
        if first_call:
            self._random_state = check_random_state(self.random_state)
            self._initialize(X, hidden_layer_sizes)
        elif self._n_hidden_units() != hidden_layer_sizes:
            raise ValueError(
                "hidden_layer_sizes changed from "
                f"{tuple(self._n_hidden_units())} to {tuple(hidden_layer_sizes)}; "
                "use warm_start=False to fit a new network."
            )
        flat_params, flat_grads, params, grads = self._pack_params()
        if self._optimizer.learning_rate != self.learning_rate:
            self._optimizer.learning_rate = self.learning_rate
        rng = self._random_state

        X_train, X_val = X, None
        if self.early_stopping:
            X_train, X_val = train_test_split(
                X, test_size=self.validation_fraction, random_state=rng
            )
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small: increase "
                    "validation_fraction or the number of samples, or set "
                    "early_stopping=False."
                )
            best_params = flat_params.copy()
            # The same draws at every epoch: the scores differ by the weights.
            validation_seed = rng.randint(np.iinfo(np.int64).max, dtype=np.int64)

        dtype = flat_params.dtype
        n_train, n_features = X_train.shape
        batch_size = min(self.batch_size, n_train)
        n_batches = -(-n_train // batch_size)
        n_draws = self.n_mc_samples
        encoder_units = [c.shape[0] for c in params[0]] + [params[0][-1].shape[1]]
        decoder_units = [c.shape[0] for c in params[2]] + [params[2][-1].shape[1]]
        buffers = _allocate_buffers(
            batch_size, n_draws, encoder_units, decoder_units, dtype
        )
        batch_buffer = np.empty((batch_size, n_features), dtype=dtype)
        sample_idx = np.arange(n_train)
        network = dict(
            activation=self.activation,
            likelihood=self.likelihood,
            elbo=self.elbo,
            objective=self.objective,
        )
        # Multiply-adds of the largest matrix product of a step.
        largest_product = batch_size * max(
            max(a * b for a, b in zip(encoder_units, encoder_units[1:])),
            n_draws * max(a * b for a, b in zip(decoder_units, decoder_units[1:])),
        )
        threads = (
            _single_threaded_blas()
            if largest_product < _SMALL_PRODUCT
            else nullcontext()
        )

        # ln p(x) = ln p((x - mean_) / scale_) - sum(ln scale_): the loss is
        # reported in X's units.
        log_scale_sum = self._log_scale_sum()
        converged = False
        with threads, np.errstate(all="ignore"):
            for _ in range(1 if incremental else self.max_iter):
                epoch_start = time.perf_counter()
                if self.shuffle:
                    rng.shuffle(sample_idx)
                accumulated_loss = 0.0
                for batch, batch_slice in enumerate(gen_batches(n_train, batch_size)):
                    n_batch = batch_slice.stop - batch_slice.start
                    rows = sample_idx[batch_slice] if self.shuffle else batch_slice
                    X_batch = _dense_rows(X_train, rows, out=batch_buffer[:n_batch])
                    if self.mean_ is not None:
                        X_batch = self._encoder_input(
                            X_batch, out=batch_buffer[:n_batch]
                        )
                    eps = rng.standard_normal(
                        (n_draws, n_batch, self.n_components)
                    ).astype(dtype, copy=False)
                    kl_weight = self._kl_weight(self.n_iter_ + (batch + 1) / n_batches)
                    batch_loss = _elbo_loss_and_grad(
                        X_batch, eps, params, grads, buffers, beta=kl_weight, **network
                    )
                    accumulated_loss += (batch_loss + log_scale_sum) * n_batch
                    self._optimizer.update_params([flat_params], [flat_grads])

                self.n_iter_ += 1
                self.t_ += n_train
                self.loss_ = accumulated_loss / n_train
                if not np.isfinite(self.loss_) or not np.all(np.isfinite(flat_params)):
                    raise ValueError(
                        f"Training diverged at epoch {self.n_iter_}: the loss is "
                        f"{self.loss_}. Use a smaller learning_rate, or scale X."
                    )
                self.loss_curve_.append(self.loss_)
                # The loss of the last warm-up epoch still mixes KL weights.
                warming_up = self.n_iter_ <= self.n_iter_kl_warmup
                if X_val is not None:
                    score = self._validation_score(X_val, validation_seed)
                    self.validation_scores_.append(score)
                    if score > self.best_validation_score_:
                        self.best_validation_score_ = score
                        best_params[...] = flat_params
                if self.verbose:
                    self._print_progress(
                        kl_weight, time.perf_counter() - epoch_start, warming_up
                    )
                if self._update_no_improvement_count(warming_up):
                    converged = True
                    if self.verbose:
                        criterion = (
                            "Validation score"
                            if self.early_stopping
                            else "Training loss"
                        )
                        print(
                            f"{criterion} did not improve more than tol={self.tol} "
                            f"for {self.n_iter_no_change} consecutive epochs. "
                            "Stopping."
                        )
                    break

        if self.early_stopping:
            flat_params[...] = best_params
        if not (incremental or converged):
            warnings.warn(
                f"VAETransformer: the maximum number of iterations "
                f"(max_iter={self.max_iter}) was reached before the "
                f"{'validation score' if self.early_stopping else 'training loss'} "
                "stopped improving; increase max_iter or tol.",
                ConvergenceWarning,
                # _fit_epochs < _fit < fit < _fit_context's wrapper < caller
                stacklevel=5,
            )
        return self

    def _kl_weight(self, progress):
        """Weight of the KL term after ``progress`` epochs (a float)."""
        beta = float(self.beta)
        if self.n_iter_kl_warmup == 0:
            return beta
        return beta * min(1.0, progress / self.n_iter_kl_warmup)

    def _validation_score(self, X_val, seed):
        """Mean bound of the validation set, estimated as in training."""
        scores = self._score_samples(
            X_val, seed, n_draws=self.n_mc_samples, bound=self.objective
        )
        return float(np.mean(scores))

    def _print_progress(self, kl_weight, seconds, warming_up):
        message = f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}"
        if self.validation_scores_ is not None:
            name = "ELBO" if self.objective == "elbo" else "IWAE bound"
            message += f", validation {name} = {self.validation_scores_[-1]:.8f}"
        if warming_up:
            message += f", KL weight = {kl_weight:.4g}"
        message += f", time = {seconds:.3f}s"
        print(message)

    def _update_no_improvement_count(self, warming_up):
        """Update the stopping counter; return whether to stop.

        As in MLPRegressor, training stops when the criterion (the validation
        score with ``early_stopping``, else minus the training loss) has not
        exceeded its best value by ``tol`` for more than
        ``n_iter_no_change`` epochs. During the KL warm-up the loss changes
        with its weight: the count starts after it.
        """
        if warming_up:
            self._no_improvement_count = 0
            self._best_criterion = -np.inf
            return False
        if self.early_stopping:
            criterion = self.validation_scores_[-1]
        else:
            criterion = -self.loss_
        if criterion < self._best_criterion + self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        self._best_criterion = max(self._best_criterion, criterion)
        if not self.early_stopping:
            self.best_loss_ = -self._best_criterion
        return self._no_improvement_count > self.n_iter_no_change

    def _hidden_layer_sizes(self):
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if not all(
            isinstance(n, Integral) and not isinstance(n, (bool, np.bool_)) and n > 0
            for n in hidden_layer_sizes
        ):
            raise ValueError(
                "hidden_layer_sizes must contain positive integers only, got "
                f"{self.hidden_layer_sizes!r}."
            )
        return [int(n) for n in hidden_layer_sizes]

    def _n_hidden_units(self):
        return [c.shape[1] for c in self.encoder_coefs_[:-1]]

    def _initialize(self, X, hidden_layer_sizes):
        """Initialise the weights, the optimiser and the training records."""
        n_features = X.shape[1]
        dtype = X.dtype
        rng = self._random_state
        encoder_units = [n_features, *hidden_layer_sizes, 2 * self.n_components]
        decoder_units = [self.n_components, *hidden_layer_sizes[::-1], n_features]
        layers = {}
        for name, units in [("encoder", encoder_units), ("decoder", decoder_units)]:
            coefs, intercepts = [], []
            for n_in, n_out in zip(units, units[1:]):
                coef, intercept = _glorot_uniform(
                    n_in, n_out, self.activation, rng, dtype
                )
                coefs.append(coef)
                intercepts.append(intercept)
            layers[name] = coefs, intercepts
        self.encoder_coefs_, self.encoder_intercepts_ = layers["encoder"]
        self.decoder_coefs_, self.decoder_intercepts_ = layers["decoder"]

        # Start the decoder at the marginal distribution of every feature.
        mean, std = _column_mean_std(X)
        if self.likelihood == "bernoulli":
            mean = np.clip(mean, 1e-3, 1 - 1e-3)
            self.decoder_intercepts_[-1][:] = np.log(mean) - np.log1p(-mean)
            self.decoder_log_var_ = None
            self.mean_ = self.scale_ = self._shift = self._output_scale = None
        else:
            # The network sees standardised features; constant features keep
            # the scale 1, as in StandardScaler.
            # Constant up to rounding: the spread is within a few units in
            # the last place of the mean.
            scale = std
            constant = scale <= 10 * np.finfo(dtype).eps * np.abs(mean)
            constant |= scale < np.finfo(dtype).tiny
            scale[constant] = 1.0
            self.mean_ = mean.astype(dtype)
            self.scale_ = scale.astype(dtype)
            self._shift = (mean / scale).astype(dtype)
            # The decoded means of constant features are their constant.
            self._output_scale = np.where(constant, 0, scale).astype(dtype)
            self.decoder_intercepts_[-1][:] = 0
            standardised_var = np.where(constant, 0.0, 1.0)
            floor = 1e-3
            log_var = np.log(np.maximum(standardised_var, floor))
            self.decoder_log_var_ = log_var.astype(dtype)

        self._eval_seed = rng.randint(np.iinfo(np.int32).max)
        self._n_features_out = self.n_components
        self._optimizer = None
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self._best_criterion = -np.inf
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _log_scale_sum(self):
        """``sum(ln scale_)``, the log-Jacobian of the standardisation."""
        if self.mean_ is None:
            return 0.0
        return float(np.sum(np.log(self.scale_, dtype=np.float64)))

    def _params(self):
        """The parameters as the tuple used by the private functions."""
        return (
            self.encoder_coefs_,
            self.encoder_intercepts_,
            self.decoder_coefs_,
            self.decoder_intercepts_,
            self.decoder_log_var_,
        )

    def _pack_params(self):
        """Move the parameters into one contiguous vector, of which the fitted
        attributes become views, so that the optimiser updates them all in a
        few array operations. Also allocate the gradients alike.
        """
        arrays = [
            p
            for group in self._params()
            if group is not None
            for p in (group if isinstance(group, list) else [group])
        ]
        shapes = [a.shape for a in arrays]
        dtype = arrays[0].dtype
        flat_params = np.concatenate([a.ravel() for a in arrays]).astype(
            dtype, copy=False
        )
        flat_grads = np.zeros_like(flat_params)
        views = _unflatten(flat_params, shapes)
        grad_views = _unflatten(flat_grads, shapes)

        def split(views):
            n_enc = len(self.encoder_coefs_)
            n_dec = len(self.decoder_coefs_)
            groups = [
                views[:n_enc],
                views[n_enc : 2 * n_enc],
                views[2 * n_enc : 2 * n_enc + n_dec],
                views[2 * n_enc + n_dec : 2 * n_enc + 2 * n_dec],
                views[-1] if self.likelihood == "gaussian" else None,
            ]
            return tuple(groups)

        params = split(views)
        grads = split(grad_views)
        (
            self.encoder_coefs_,
            self.encoder_intercepts_,
            self.decoder_coefs_,
            self.decoder_intercepts_,
            self.decoder_log_var_,
        ) = params
        if self._optimizer is None or self._optimizer.ms[0].shape != flat_params.shape:
            self._optimizer = AdamOptimizer([flat_params], self.learning_rate)
        return flat_params, flat_grads, params, grads

    # ------------------------------------------------------------------
    # Validation helpers

    def _validate_X(self, X):
        """Validate X for a fitted model and cast it to the weights' dtype."""
        X = validate_data(
            self, X, accept_sparse="csr", dtype=[np.float64, np.float32], reset=False
        )
        X = X.astype(self.encoder_coefs_[0].dtype, copy=False)
        self._check_encoder_input(X)
        return X

    def _check_encoder_input(self, X, what="X"):
        """Raise a ValueError if the encoder's input from X (standardised for
        the Gaussian likelihood) is too large for its arithmetic."""
        if X.shape[0] == 0:
            return
        largest = _column_abs_max(X)
        if self.mean_ is not None:
            with np.errstate(over="ignore"):  # inf is above any limit
                largest = (largest + np.abs(self.mean_)) / self.scale_
        largest = float(largest.max())
        limit = _magnitude_limit(X.dtype)
        if largest > limit:
            units = (
                " standard deviations (of the training data)"
                if self.mean_ is not None
                else ""
            )
            raise ValueError(
                f"{what} contains values up to {largest:.3g}{units} from the "
                f"origin, above the {limit:.3g} that the encoder handles in "
                f"{X.dtype} without overflow."
            )

    def _encoder_input(self, X, out=None):
        """X standardised as ``(X - mean_) / scale_`` for the Gaussian
        likelihood (into ``out`` if given), X itself for the Bernoulli one.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        out : ndarray of shape (n_samples, n_features), default=None
            May be X itself.

        Returns
        -------
        X_input : ndarray of shape (n_samples, n_features)
        """
        if self.mean_ is None:
            return X
        # X / scale - mean / scale cannot overflow where X - mean could.
        X_input = np.divide(X, self.scale_, out=out)
        X_input -= self._shift
        return X_input

    def _check_likelihood_support(self, X):
        if self.likelihood != "bernoulli":
            return
        values = X.data if sp.issparse(X) else X
        if values.size and (values.min() < 0 or values.max() > 1):
            raise ValueError(
                "likelihood='bernoulli' requires X in [0, 1], got values in "
                f"[{values.min()}, {values.max()}]. Scale X (e.g. with "
                "MinMaxScaler) or use likelihood='gaussian'."
            )

    def _dense_chunks(self, X, n_draws=1):
        """Slices of X and its dense rows, with at most ``_CHUNK_FLOATS`` floats
        per layer buffer."""
        widest = max(
            [self.n_features_in_]
            + [c.shape[1] for c in self.encoder_coefs_ + self.decoder_coefs_]
        )
        chunk_size = max(1, _CHUNK_FLOATS // (n_draws * widest))
        for chunk in gen_batches(X.shape[0], chunk_size):
            yield chunk, _dense_rows(X, chunk)

    # ------------------------------------------------------------------
    # Transforming, decoding and sampling

    def transform(self, X):
        """Encode X as the means of the approximate posterior q(z|x).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Posterior means ``mu(x)``.
        """
        check_is_fitted(self)
        X = self._validate_X(X)
        return self._posterior(X)[0]

    def _posterior(self, X):
        """Means and log-variances of q(z|x), each (n_samples, n_components)."""
        params = self._params()
        dtype = self.encoder_coefs_[0].dtype
        units = [X.shape[1]] + [c.shape[1] for c in self.encoder_coefs_]
        mu = np.empty((X.shape[0], self.n_components), dtype=dtype)
        log_var = np.empty_like(mu)
        for chunk, X_chunk in self._dense_chunks(X):
            activations = _allocate_activations(X_chunk.shape[0], units, dtype)
            mu[chunk], log_var[chunk], _ = _encode(
                self._encoder_input(X_chunk), params, self.activation, activations
            )
        return mu, log_var

    def sample_posterior(self, X, n_samples=1, random_state=None):
        """Draw latent points from the approximate posterior q(z|x).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples_X, n_features)
            Data to encode.

        n_samples : int, default=1
            Number of draws per sample of X.

        random_state : int, RandomState instance or None, default=None
            Determines the draws. Pass an int for reproducible results.

        Returns
        -------
        Z : ndarray of shape (n_samples_X * n_samples, n_components)
            Draws ``mu(x) + sigma(x) * eps``, the ``n_samples`` draws of each
            sample of X in consecutive rows: with ``n_samples=1``, row ``i``
            is a draw for ``X[i]``; in general
            ``Z.reshape(n_samples_X, n_samples, n_components)[i]`` are those of
            ``X[i]``.
        """
        check_is_fitted(self)
        n_samples = _check_count(n_samples, "n_samples")
        rng = _check_random_state_argument(random_state)
        X = self._validate_X(X)
        mu, log_var = self._posterior(X)
        eps = rng.standard_normal((X.shape[0], n_samples, self.n_components))
        Z = eps.astype(mu.dtype, copy=False)
        Z *= np.exp(0.5 * log_var)[:, np.newaxis]
        Z += mu[:, np.newaxis]
        return Z.reshape(-1, self.n_components)

    def inverse_transform(self, X):
        """Decode latent points into the means of p(x|z).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent points, e.g. the output of :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, `n_features_in_`)
            Decoder means: probabilities for ``likelihood="bernoulli"``,
            means for "gaussian".
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=[np.float64, np.float32], input_name="X")
        if Z.shape[1] != self.n_components:
            raise ValueError(
                f"X has {Z.shape[1]} features, but inverse_transform expects "
                f"n_components={self.n_components} latent features."
            )
        Z = Z.astype(self.encoder_coefs_[0].dtype, copy=False)
        limit = _magnitude_limit(Z.dtype)
        if Z.size and np.max(np.abs(Z)) > limit:
            raise ValueError(
                f"X contains latent points of magnitude up to "
                f"{np.max(np.abs(Z)):.3g}, above the {limit:.3g} that the "
                f"decoder handles in {Z.dtype} without overflow."
            )
        return self._decode(Z)

    def _decode(self, Z):
        """Decoder means for latent points Z of shape (n_samples, n_components)."""
        units = [self.n_components] + [c.shape[1] for c in self.decoder_coefs_]
        X = np.empty((Z.shape[0], self.n_features_in_), dtype=Z.dtype)
        for chunk, Z_chunk in self._dense_chunks(Z):
            activations = _allocate_activations(Z_chunk.shape[0], units, Z.dtype)
            output = _forward_pass(
                Z_chunk,
                self.decoder_coefs_,
                self.decoder_intercepts_,
                self.activation,
                activations,
            )
            X[chunk] = _decoder_mean(output, self.likelihood)
        if self.mean_ is not None:
            with np.errstate(over="ignore"):
                X *= self._output_scale
                X += self.mean_
            if not np.all(np.isfinite(X)):
                raise ValueError(
                    "The decoded means overflow the range of "
                    f"{X.dtype}: the latent points are too far from the prior."
                )
        return X

    def sample(self, n_samples=1):
        """Generate data: decoder means of latent points drawn from the prior.

        The draws come from a generator seeded when fitting: repeated calls
        return the same samples.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to generate.

        Returns
        -------
        X : ndarray of shape (n_samples, `n_features_in_`)
            Decoder means of ``z ~ N(0, I)``.
        """
        check_is_fitted(self)
        n_samples = _check_count(n_samples, "n_samples")
        dtype = self.encoder_coefs_[0].dtype
        rng = check_random_state(self._eval_seed + 1)
        Z = rng.standard_normal((n_samples, self.n_components)).astype(dtype)
        return self._decode(Z)

    # ------------------------------------------------------------------
    # Scoring

    def score_samples(self, X):
        """Lower bound on the log-likelihood ln p(x) of every sample, in nats.

        The bound of ``score_bound`` estimated from ``n_score_draws`` latent
        draws per sample (see these parameters): the ELBO (with the
        estimator ``elbo`` and ``beta=1``) averaged over the draws, or the
        importance-weighted bound. Costs one encoder pass and
        ``n_score_draws`` decoder passes per sample, in chunks of bounded
        memory.

        Every sample has its own draws, generated from its values and a seed
        taken from ``random_state``: a sample's score does not depend on the
        other rows of X or on their order, and the Monte Carlo errors of
        different samples are independent, so that they average out in
        :meth:`score`. With an int ``random_state`` the scores are
        reproducible.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data; in [0, 1] for ``likelihood="bernoulli"``.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Estimates of lower bounds on ln p(x), in nats.
        """
        check_is_fitted(self)
        X = self._validate_X(X)
        self._check_likelihood_support(X)
        seed = check_random_state(self.random_state).randint(
            np.iinfo(np.int64).max, dtype=np.int64
        )
        return self._score_samples(
            X, seed, n_draws=self.n_score_draws, bound=self.score_bound
        )

    def _score_samples(self, X, seed, *, n_draws, bound):
        """Per-sample bounds with ``n_draws`` draws keyed by the rows and seed."""
        params = self._params()
        dtype = self.encoder_coefs_[0].dtype
        scores = np.empty(X.shape[0])
        config = dict(activation=self.activation, likelihood=self.likelihood)
        for chunk, X_chunk in self._dense_chunks(X, n_draws):
            eps = _keyed_standard_normal(
                _row_keys(X_chunk, seed), n_draws, self.n_components, dtype
            )
            X_input = self._encoder_input(X_chunk)
            if bound == "iwae":
                scores[chunk] = _importance_weighted_bound(
                    X_input, eps, params, **config
                )
            else:
                scores[chunk] = _elbo(X_input, eps, params, elbo=self.elbo, **config)
        scores -= self._log_scale_sum()
        return scores

    def score(self, X, y=None):
        """Mean lower bound on the log-likelihood of X, in nats per sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data; in [0, 1] for ``likelihood="bernoulli"``.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            Mean of :meth:`score_samples`.
        """
        return float(np.mean(self.score_samples(X)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _column_mean_std(X):
    """Mean and standard deviation of every column of dense or sparse X, in
    float64, without overflow for any finite X.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)

    Returns
    -------
    mean, std : ndarray of shape (n_features,)
    """
    # Divide by the largest magnitude of each column so that neither the sums
    # nor the squares can overflow.
    scale = _column_abs_max(X)
    scale[scale == 0] = 1.0
    if sp.issparse(X):
        X_scaled = sp.csr_matrix(X.multiply(1 / scale), dtype=np.float64)
        mean, var = mean_variance_axis(X_scaled, axis=0)
    else:
        X_scaled = X / scale
        mean = X_scaled.mean(axis=0, dtype=np.float64)
        var = np.var(X_scaled, axis=0, dtype=np.float64)
    return mean * scale, np.sqrt(var) * scale
