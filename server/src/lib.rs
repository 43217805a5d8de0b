//! `nird-server`: the central server, its admin CLI and the profile signing tools.
