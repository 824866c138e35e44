//! LAN (stub).
