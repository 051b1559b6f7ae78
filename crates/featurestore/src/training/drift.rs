//! Drift of each feature between two training sets: the population stability index and the
//! two-sample Kolmogorov–Smirnov test, over values and, for list features, over lengths.
