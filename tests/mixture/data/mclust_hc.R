# Fixture of tests/mixture/test_hierarchical.py: R's mclust hc() and hclass()
# on iris and wine, as mclust initialises Mclust() (its defaults
# mclust.options("hcModelName") = "VVV" and mclust.options("hcUse") = "SVD").
# Produced with R 4.2.2 and mclust 6.0.0 (Debian's r-cran-mclust). From the
# repository root:
#
#   python -c "from sklearn.datasets import load_iris, load_wine; import numpy as np; \
#     [np.savetxt(f'/tmp/{n}.csv', f().data, delimiter=',', fmt='%.17g') \
#      for n, f in [('iris', load_iris), ('wine', load_wine)]]"
#   cd tests/mixture/data && Rscript mclust_hc.R /tmp
#
# For each data set it writes <name>_hc_pairs.csv, the merges (t(hcPairs):
# one row per merge, 1-based, the first the smaller cluster name), and
# <name>_hclass.csv, hclass(hcPairs, 1:15) (one column per K = 1..15).
suppressMessages(library(mclust))
dir <- commandArgs(trailingOnly = TRUE)[1]
for (name in c("iris", "wine")) {
  X <- as.matrix(read.csv(file.path(dir, paste0(name, ".csv")), header = FALSE))
  h <- hc(X, modelName = "VVV", use = "SVD")
  write.table(t(h), paste0(name, "_hc_pairs.csv"), sep = ",",
              row.names = FALSE, col.names = FALSE)
  write.table(hclass(h, 1:15), paste0(name, "_hclass.csv"), sep = ",",
              row.names = FALSE, col.names = FALSE)
}
