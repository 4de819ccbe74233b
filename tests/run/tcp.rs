//! TCP semantics through `svcproxy run` with the default `--splice auto`:
//! a half-close travels one way while the other way keeps flowing, in both
//! directions, and a reset on one side becomes a reset on the other. The
//! checks live in `support::semantics`; `splice` runs them under the other
//! modes.

use crate::support::semantics;

#[test]
fn client_half_close_reaches_the_endpoint_and_the_reply_still_arrives() {
    semantics::client_half_close(&[]);
}

#[test]
fn endpoint_half_close_reaches_the_client_which_can_still_send() {
    semantics::endpoint_half_close(&[]);
}

#[test]
fn endpoint_reset_reaches_the_client_as_a_reset() {
    semantics::endpoint_reset(&[]);
}

#[test]
fn client_reset_reaches_the_endpoint_as_a_reset() {
    semantics::client_reset(&[]);
}
