"""Variational auto-encoder as a scikit-learn transformer."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.model_selection import train_test_split
from sklearn.utils import check_array, check_random_state, gen_batches
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._elbo import (
    _allocate_buffers,
    _elbo,
    _elbo_loss_and_grad,
    _encode,
    _importance_weighted_bound,
)
from ._likelihoods import LOG_VAR_MAX, LOG_VAR_MIN, _decoder_mean
from ._network import (
    ACTIVATIONS,
    _allocate_activations,
    _forward_pass,
    _glorot_uniform,
    _unflatten,
)
from ._optimizers import AdamOptimizer

# Largest number of floats in one layer's buffer when scoring or transforming
# in chunks.
_CHUNK_FLOATS = 2**22


def _check_n_samples(n_samples):
    if not isinstance(n_samples, Integral) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")


class VAETransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Variational auto-encoder (VAE) for non-linear dimensionality reduction.

    The encoder ``q(z|x) = N(mu(x), diag sigma^2(x))`` and the decoder
    ``p(x|z)`` are multi-layer perceptrons; the decoder mirrors the hidden
    layers of the encoder and the prior is ``p(z) = N(0, I)``. Training
    maximises the evidence lower bound (ELBO) on ``ln p(x)`` by minibatch
    Adam, with the reparameterisation ``z = mu + sigma * eps``,
    ``eps ~ N(0, I)``, so that gradients flow through the latent draws.

    ``transform`` returns the posterior means ``mu(x)``, ``inverse_transform``
    decodes latent points, ``sample`` generates data, and ``score_samples``
    estimates ``ln p(x)`` from below. Pure NumPy: the forward and backward
    passes and the optimiser are written out; float32 input is trained and
    transformed in float32.

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
          suited to any real-valued data.
        - "bernoulli": the decoder outputs logits and ``ln p(x|z)`` is the
          negative binary cross-entropy, computed stably from the logits. X
          must lie in [0, 1] (binary data, or e.g. grey levels scaled to
          [0, 1]).

    elbo : {"analytic_kl", "entropy", "monte_carlo"}, default="analytic_kl"
        The ELBO estimator, averaged over ``n_mc_samples`` latent draws:

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

    n_mc_samples : int, default=1
        Latent draws per sample in every ELBO estimate, in training and in
        ``score_samples``.

    beta : float, default=1.0
        Weight of the KL term in the training objective (beta-VAE). Values
        above 1 favour a factorised latent space, below 1 a better
        reconstruction. ``score_samples`` always reports the ELBO with
        ``beta=1``.

    batch_size : int, default=128
        Size of the minibatches; clipped to the number of training samples.

    learning_rate : float, default=1e-3
        Step size of Adam.

    max_iter : int, default=200
        Maximum number of epochs (passes over the training data).

    tol : float, default=1e-4
        Tolerance, in nats per sample, of the stopping criterion: training
        stops when the training loss (or, with ``early_stopping``, the
        validation score) has not improved by at least ``tol`` for
        ``n_iter_no_change`` consecutive epochs.

    n_iter_no_change : int, default=10
        Number of epochs without improvement that stop training.

    early_stopping : bool, default=False
        Whether to hold out ``validation_fraction`` of the training data,
        score it (its mean ELBO) after every epoch, stop when the score stops
        improving, and restore the weights of the best epoch.

    validation_fraction : float, default=0.1
        Fraction of the training data held out when ``early_stopping`` is
        True.

    n_importance_samples : int, default=1
        Number of importance samples ``K`` of ``score_samples``. With 1, it
        returns the ELBO; with ``K > 1`` the importance-weighted bound
        ``ln 1/K sum_k p(x, z_k) / q(z_k|x)``, a tighter lower bound on
        ``ln p(x)``.

    shuffle : bool, default=True
        Whether to shuffle the training data at every epoch.

    warm_start : bool, default=False
        Whether ``fit`` continues from the weights (and optimiser state) of
        the previous call instead of initialising anew.

    random_state : int, RandomState instance or None, default=None
        Determines the weight initialisation, the shuffling, the latent draws
        of training, the train-validation split, and the fixed draws of
        ``score_samples`` and ``sample``. Pass an int for reproducible
        results. See :term:`Glossary <random_state>`.

    verbose : int, default=0
        Whether to print the loss at every epoch.

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
        ``n_features_in_`` outputs.

    decoder_intercepts_ : list of ndarray
        Intercepts of the decoder's layers.

    decoder_log_var_ : ndarray of shape (n_features_in_,) or None
        Learned log-variance of every feature for ``likelihood="gaussian"``;
        None for "bernoulli".

    loss_ : float
        Training loss (mean negative ELBO, in nats, with the KL term weighted
        by ``beta``) of the last epoch.

    loss_curve_ : list of float
        Training loss of every epoch.

    best_loss_ : float or None
        Lowest training loss; None with ``early_stopping``.

    validation_scores_ : list of float or None
        Mean ELBO of the validation set after every epoch, with
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
    ``score_samples`` and ``sample`` use draws from a generator seeded when
    fitting, the same for every call, and ``score_samples`` uses the same
    draws ``eps`` for every sample (common random numbers): a sample's score
    depends on that sample only and is reproducible. Training stops at
    ``max_iter`` without a warning: the loss is a stochastic estimate, and
    ``loss_curve_`` shows the progress.

    References
    ----------
    D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.

    Y. Burda, R. Grosse and R. Salakhutdinov, "Importance Weighted
    Autoencoders", ICLR 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_em import VAETransformer
    >>> X, _ = load_digits(return_X_y=True)
    >>> X = X / 16
    >>> vae = VAETransformer(n_components=2, hidden_layer_sizes=(32,),
    ...                      likelihood="bernoulli", max_iter=5, random_state=0)
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
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "likelihood": [StrOptions({"bernoulli", "gaussian"})],
        "elbo": [StrOptions({"analytic_kl", "entropy", "monte_carlo"})],
        "n_mc_samples": [Interval(Integral, 1, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
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
        n_mc_samples=1,
        beta=1.0,
        batch_size=128,
        learning_rate=1e-3,
        max_iter=200,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        n_importance_samples=1,
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
        self.n_mc_samples = n_mc_samples
        self.beta = beta
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_importance_samples = n_importance_samples
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
        X : array-like of shape (n_samples, n_features)
            Training data; in [0, 1] for ``likelihood="bernoulli"``.

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
        X : array-like of shape (n_samples, n_features)
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
        hidden_layer_sizes = self._hidden_layer_sizes()
        fitted = hasattr(self, "encoder_coefs_")
        first_call = not fitted or not (incremental or self.warm_start)
        if first_call:
            X = validate_data(self, X, dtype=[np.float64, np.float32])
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

        X_train, X_val = X, None
        if self.early_stopping:
            X_train, X_val = train_test_split(
                X, test_size=self.validation_fraction, random_state=self._random_state
            )
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small: increase "
                    "validation_fraction or the number of samples, or set "
                    "early_stopping=False."
                )
            best_params = flat_params.copy()

        dtype = flat_params.dtype
        n_train, n_features = X_train.shape
        batch_size = min(self.batch_size, n_train)
        n_draws = self.n_mc_samples
        buffers = _allocate_buffers(
            batch_size,
            n_draws,
            [c.shape[0] for c in params[0]] + [params[0][-1].shape[1]],
            [c.shape[0] for c in params[2]] + [params[2][-1].shape[1]],
            dtype,
        )
        batch_buffer = np.empty((batch_size, n_features), dtype=dtype)
        sample_idx = np.arange(n_train)
        network = dict(
            activation=self.activation,
            likelihood=self.likelihood,
            elbo=self.elbo,
            beta=float(self.beta),
        )

        with np.errstate(all="ignore"):
            for _ in range(self.max_iter):
                if self.shuffle:
                    self._random_state.shuffle(sample_idx)
                accumulated_loss = 0.0
                for batch_slice in gen_batches(n_train, batch_size):
                    n_batch = batch_slice.stop - batch_slice.start
                    if self.shuffle:
                        X_batch = np.take(
                            X_train,
                            sample_idx[batch_slice],
                            axis=0,
                            out=batch_buffer[:n_batch],
                        )
                    else:
                        X_batch = X_train[batch_slice]
                    eps = self._random_state.standard_normal(
                        (n_draws, n_batch, self.n_components)
                    ).astype(dtype, copy=False)
                    batch_loss = _elbo_loss_and_grad(
                        X_batch, eps, params, grads, buffers, **network
                    )
                    accumulated_loss += batch_loss * n_batch
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
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")

                is_best = self._update_no_improvement_count(X_val)
                if is_best and self.early_stopping:
                    best_params[...] = flat_params
                if self._no_improvement_count > self.n_iter_no_change:
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
                if incremental:
                    break

        if self.early_stopping:
            flat_params[...] = best_params
        return self

    def _update_no_improvement_count(self, X_val):
        """Update the stopping counter; return whether this epoch is the best."""
        if X_val is not None:
            score = float(np.mean(self._score_samples(X_val)))
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:.8f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                return True
            return False
        if self.loss_ > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if self.loss_ < self.best_loss_:
            self.best_loss_ = self.loss_
            return True
        return False

    def _hidden_layer_sizes(self):
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if not all(
            isinstance(n, Integral) and not isinstance(n, bool) and n > 0
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
        mean = X.mean(axis=0, dtype=np.float64)
        if self.likelihood == "bernoulli":
            mean = np.clip(mean, 1e-3, 1 - 1e-3)
            self.decoder_intercepts_[-1][:] = np.log(mean) - np.log1p(-mean)
            self.decoder_log_var_ = None
        else:
            self.decoder_intercepts_[-1][:] = mean
            var = X.var(axis=0, dtype=np.float64)
            floor = 1e-3 * var.mean() if var.mean() > 0 else 1.0
            log_var = np.log(np.maximum(var, floor))
            self.decoder_log_var_ = np.clip(log_var, LOG_VAR_MIN, LOG_VAR_MAX).astype(
                dtype
            )

        self._eval_seed = rng.randint(np.iinfo(np.int32).max)
        self._n_features_out = self.n_components
        self._optimizer = None
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

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
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return X.astype(self.encoder_coefs_[0].dtype, copy=False)

    def _check_likelihood_support(self, X):
        if self.likelihood == "bernoulli" and X.size and (X.min() < 0 or X.max() > 1):
            raise ValueError(
                "likelihood='bernoulli' requires X in [0, 1], got values in "
                f"[{X.min()}, {X.max()}]. Scale X (e.g. with MinMaxScaler) or use "
                "likelihood='gaussian'."
            )

    def _chunks(self, n_samples, n_draws=1):
        """Slices of at most ``_CHUNK_FLOATS`` floats per layer buffer."""
        widest = max(
            [self.n_features_in_]
            + [c.shape[1] for c in self.encoder_coefs_ + self.decoder_coefs_]
        )
        chunk_size = max(1, _CHUNK_FLOATS // (n_draws * widest))
        return gen_batches(n_samples, chunk_size)

    # ------------------------------------------------------------------
    # Transforming, decoding and sampling

    def transform(self, X):
        """Encode X as the means of the approximate posterior q(z|x).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
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
        units = [X.shape[1]] + [c.shape[1] for c in self.encoder_coefs_]
        mu = np.empty((X.shape[0], self.n_components), dtype=X.dtype)
        log_var = np.empty_like(mu)
        for chunk in self._chunks(X.shape[0]):
            activations = _allocate_activations(
                chunk.stop - chunk.start, units, X.dtype
            )
            mu[chunk], log_var[chunk], _ = _encode(
                X[chunk], params, self.activation, activations
            )
        return mu, log_var

    def sample_posterior(self, X, n_samples=1, random_state=None):
        """Draw latent points from the approximate posterior q(z|x).

        Parameters
        ----------
        X : array-like of shape (n_samples_X, n_features)
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
        _check_n_samples(n_samples)
        X = self._validate_X(X)
        rng = check_random_state(random_state)
        mu, log_var = self._posterior(X)
        eps = rng.standard_normal((X.shape[0], n_samples, self.n_components))
        Z = eps.astype(X.dtype, copy=False)
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
        X_original : ndarray of shape (n_samples, n_features_in_)
            Decoder means: probabilities for ``likelihood="bernoulli"``,
            means for "gaussian".
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=[np.float64, np.float32])
        if Z.shape[1] != self.n_components:
            raise ValueError(
                f"X has {Z.shape[1]} features, but inverse_transform expects "
                f"n_components={self.n_components} latent features."
            )
        return self._decode(Z.astype(self.encoder_coefs_[0].dtype, copy=False))

    def _decode(self, Z):
        """Decoder means for latent points Z of shape (n_samples, n_components)."""
        units = [self.n_components] + [c.shape[1] for c in self.decoder_coefs_]
        X = np.empty((Z.shape[0], self.n_features_in_), dtype=Z.dtype)
        for chunk in self._chunks(Z.shape[0]):
            activations = _allocate_activations(
                chunk.stop - chunk.start, units, Z.dtype
            )
            output = _forward_pass(
                Z[chunk],
                self.decoder_coefs_,
                self.decoder_intercepts_,
                self.activation,
                activations,
            )
            X[chunk] = _decoder_mean(output, self.likelihood)
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
        X : ndarray of shape (n_samples, n_features_in_)
            Decoder means of ``z ~ N(0, I)``.
        """
        check_is_fitted(self)
        _check_n_samples(n_samples)
        dtype = self.encoder_coefs_[0].dtype
        rng = check_random_state(self._eval_seed + 1)
        Z = rng.standard_normal((n_samples, self.n_components)).astype(dtype)
        return self._decode(Z)

    # ------------------------------------------------------------------
    # Scoring

    def score_samples(self, X):
        """Lower bound on the log-likelihood ln p(x) of every sample, in nats.

        The ELBO estimate of ``elbo`` with ``n_mc_samples`` draws (and
        ``beta=1``) if ``n_importance_samples`` is 1, else the
        importance-weighted bound with ``n_importance_samples`` draws, a
        tighter bound. The draws are the same for every call and every
        sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data; in [0, 1] for ``likelihood="bernoulli"``.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Lower bounds on ln p(x), in nats.
        """
        check_is_fitted(self)
        X = self._validate_X(X)
        self._check_likelihood_support(X)
        return self._score_samples(X)

    def _score_samples(self, X):
        n_draws = max(self.n_importance_samples, 1)
        if self.n_importance_samples == 1:
            n_draws = self.n_mc_samples
        rng = check_random_state(self._eval_seed)
        eps = rng.standard_normal((n_draws, 1, self.n_components)).astype(X.dtype)
        params = self._params()
        scores = np.empty(X.shape[0])
        with np.errstate(all="ignore"):
            for chunk in self._chunks(X.shape[0], n_draws):
                if self.n_importance_samples > 1:
                    scores[chunk] = _importance_weighted_bound(
                        X[chunk],
                        eps,
                        params,
                        activation=self.activation,
                        likelihood=self.likelihood,
                    )
                else:
                    scores[chunk] = _elbo(
                        X[chunk],
                        eps,
                        params,
                        activation=self.activation,
                        likelihood=self.likelihood,
                        elbo=self.elbo,
                    )
        return scores

    def score(self, X, y=None):
        """Mean lower bound on the log-likelihood of X, in nats per sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
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
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
