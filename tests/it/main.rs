//! graphvcr's integration tests: one binary (faster to link), talking only to 127.0.0.1.

mod admin;
mod capture;
mod cli;
mod common;
mod delivery;
mod drift;
mod durability;
mod faults;
mod fidelity;
mod hostile;
mod identity;
mod integrity;
mod notifications;
mod properties;
mod proxy;
mod rest;
mod secrets;
mod stored;
mod suite;
mod tls;
