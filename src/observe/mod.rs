//! observe (to be written)
