//! The quality of a training set, measured in one pass over its batches as they are written.
