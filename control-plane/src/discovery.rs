//! Tool discovery: placeholder until written.
