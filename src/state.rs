//! state (to be written)
