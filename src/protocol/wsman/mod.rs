//! WS-Management.
