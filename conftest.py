"""Session-wide test configuration.

``SCIPY_ARRAY_API`` must be set before SciPy is imported for scikit-learn's
array API estimator check to run rather than be skipped: setting it here, in
the root conftest, covers the whole suite.
"""

import os

os.environ.setdefault("SCIPY_ARRAY_API", "1")
