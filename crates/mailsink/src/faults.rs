//! Fault injection: which transactions the sink rejects, delays or drops, and at which stage.

use std::time::Duration;

/// The point of an SMTP transaction at which a [`FaultPlan`] acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultStage {
    /// The reply to `MAIL FROM`.
    Mail,
    /// The reply to `RCPT TO` (once per matching recipient).
    Rcpt,
    /// The reply after the end of `DATA`: the message was transferred but is not stored.
    #[default]
    DataEnd,
}

/// What the sink does when a fault fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Reply normally, only after the plan's delay.
    Accept,
    /// Reply with this code and text instead of the normal reply.
    Reply {
        /// The three-digit SMTP reply code, e.g. 451 or 554.
        code: u16,
        /// The reply text, usually starting with an enhanced status code ("4.3.0 Try again later").
        text: String,
    },
    /// Close the connection without replying, as a crashing server would.
    Disconnect,
}

/// How the sink misbehaves for later transactions. Install one with `MailSink::set_faults`.
///
/// ```
/// use herald_mailsink::FaultPlan;
/// // The next two messages are refused with a 4xx after DATA; later ones are stored.
/// let plan = FaultPlan::reject_next(2, 451, "4.3.0 Try again later");
/// // Every recipient containing "bounce" is refused at RCPT.
/// let plan = FaultPlan::reject_all(550, "5.1.1 No such user").at_rcpt().when_recipient_contains("bounce");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    pub(crate) action: FaultAction,
    pub(crate) stage: FaultStage,
    /// `None` means every matching transaction; `Some(n)` the next `n`, then the plan is spent.
    pub(crate) times: Option<usize>,
    pub(crate) recipient_contains: Option<String>,
    pub(crate) delay: Duration,
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self::none()
    }
}

impl FaultPlan {
    /// No faults: every transaction is accepted and replied to at once.
    pub fn none() -> Self {
        Self {
            action: FaultAction::Accept,
            stage: FaultStage::DataEnd,
            times: Some(0),
            recipient_contains: None,
            delay: Duration::ZERO,
        }
    }

    /// Reply `code text` after the end of DATA for the next `n` transactions, then accept again.
    pub fn reject_next(n: usize, code: u16, text: impl Into<String>) -> Self {
        Self {
            action: FaultAction::Reply {
                code,
                text: text.into(),
            },
            times: Some(n),
            ..Self::none()
        }
    }

    /// Reply `code text` after the end of DATA for every transaction.
    pub fn reject_all(code: u16, text: impl Into<String>) -> Self {
        Self {
            times: None,
            ..Self::reject_next(0, code, text)
        }
    }

    /// Close the connection without a reply, after the end of DATA, for the next `n` transactions.
    pub fn disconnect_next(n: usize) -> Self {
        Self {
            action: FaultAction::Disconnect,
            times: Some(n),
            ..Self::none()
        }
    }

    /// Accept every transaction, but wait `delay` before the reply after DATA (for timeout tests).
    pub fn delay_all(delay: Duration) -> Self {
        Self {
            times: None,
            delay,
            ..Self::none()
        }
    }

    /// Act on the reply to `MAIL FROM` instead.
    pub fn at_mail(self) -> Self {
        self.at(FaultStage::Mail)
    }

    /// Act on the reply to each `RCPT TO` instead.
    pub fn at_rcpt(self) -> Self {
        self.at(FaultStage::Rcpt)
    }

    /// Act on the reply after the end of DATA (the default).
    pub fn at_data_end(self) -> Self {
        self.at(FaultStage::DataEnd)
    }

    /// Act at `stage`.
    pub fn at(mut self, stage: FaultStage) -> Self {
        self.stage = stage;
        self
    }

    /// Only act on transactions (or, at RCPT, recipients) whose recipient contains `needle`.
    pub fn when_recipient_contains(mut self, needle: impl Into<String>) -> Self {
        self.recipient_contains = Some(needle.into());
        self
    }

    /// Wait `delay` before the reply whenever the plan fires.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Decides whether the plan fires at `stage` for these recipients, and spends one use if so.
    pub(crate) fn fire<'a>(
        &mut self,
        stage: FaultStage,
        mut recipients: impl Iterator<Item = &'a str>,
    ) -> Option<Fault> {
        if stage != self.stage || self.times == Some(0) {
            return None;
        }
        if let Some(needle) = &self.recipient_contains
            && !recipients.any(|rcpt| rcpt.contains(needle.as_str()))
        {
            return None;
        }
        if let Some(left) = self.times.as_mut() {
            *left -= 1;
        }
        Some(Fault {
            action: self.action.clone(),
            delay: self.delay,
        })
    }
}

/// One firing of a plan, handed to the session that must act on it.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub(crate) action: FaultAction,
    pub(crate) delay: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_next_fires_n_times_then_stops() {
        let mut plan = FaultPlan::reject_next(2, 451, "4.3.0 later");
        let rcpts = ["a@example.com"];
        assert!(plan.fire(FaultStage::DataEnd, rcpts.into_iter()).is_some());
        assert!(plan.fire(FaultStage::Rcpt, rcpts.into_iter()).is_none());
        assert!(plan.fire(FaultStage::DataEnd, rcpts.into_iter()).is_some());
        assert!(plan.fire(FaultStage::DataEnd, rcpts.into_iter()).is_none());
    }

    #[test]
    fn recipient_rule_only_matches_matching_recipients() {
        let mut plan = FaultPlan::reject_all(550, "5.1.1 no").when_recipient_contains("bounce");
        assert!(
            plan.fire(FaultStage::DataEnd, ["ok@x.org"].into_iter())
                .is_none()
        );
        assert!(
            plan.fire(
                FaultStage::DataEnd,
                ["ok@x.org", "bounce@x.org"].into_iter()
            )
            .is_some()
        );
    }

    #[test]
    fn none_never_fires() {
        let mut plan = FaultPlan::none();
        for stage in [FaultStage::Mail, FaultStage::Rcpt, FaultStage::DataEnd] {
            assert!(plan.fire(stage, std::iter::empty()).is_none());
        }
    }
}
