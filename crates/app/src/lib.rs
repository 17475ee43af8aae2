//! Herald's composition root: [`Settings`] and [`Application::build`], the one place where the
//! store, the broker session, the mailer, the renderer and the worker are wired together.
//!
//! Every front end goes through it: `herald worker` and `herald demo` today, `herald serve`
//! next, and the tests (through `herald-testkit`), which change a field of [`Settings`] and
//! build, instead of assembling parts of their own. The parts' builders ([`store`],
//! [`renderer`], [`mailer`], [`topology`]) are public for the one-shot commands that need a
//! single part (`herald migrate` needs only the store).
//!
//! It is a crate of its own rather than a module of the `herald` binary crate so that
//! `herald-testkit` and the coming HTTP front end can depend on it without the binary's command
//! line, printing and benchmark code.

mod application;
pub mod mfa_keys;
pub mod settings;

pub use application::{ApiBuildError, Application, BuildError, mailer, renderer, store};
pub use mfa_keys::{ResealReport, mfa_keys, reseal_mfa_secrets};
pub use settings::{Settings, SettingsError};
