//! Lua host (to be written)
