//! graphvcr's integration tests: one binary (faster to link), talking only to 127.0.0.1.

mod admin;
mod cli;
mod common;
mod delivery;
mod durability;
mod hostile;
mod integrity;
mod notifications;
mod properties;
mod rest;
mod secrets;
