//! graphvcr's integration tests: one binary (faster to link), talking only to 127.0.0.1.

mod admin;
mod capture;
mod cli;
mod common;
mod delivery;
mod drift;
mod faults;
mod fidelity;
mod identity;
mod notifications;
mod proxy;
mod rest;
mod suite;
mod tls;
