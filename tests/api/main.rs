//! The integration suite: one binary, the real app on port 0, a fresh database per test.

mod helpers;

mod ai_engine;
mod ai_gate;
mod audit;
mod basics;
mod cost;
mod cursors;
mod hosts;
mod identity;
mod impersonation;
mod isolation;
mod jobs;
mod keys;
mod limits;
mod messages;
mod metrics;
mod oidc;
mod openapi;
mod operator;
mod outbox;
mod plans;
mod regions;
mod rls;
mod routing_paths;
mod search;
mod security;
mod shutdown;
mod signin;
mod slapd;
mod storage;
mod summaries;
mod tenants;
mod tls;
mod users;
mod webhooks;
