// Own test binary: .ci/pmu-guest runs it by name in the emulated-PMU guest.
//! What attaching `MeasureLayer` to an axum app costs a request it does not
//! sample, in user-space instructions, for each way to attach it; gated
//! like tests/pmu_cost.rs against the `router_*` rows of BENCHMARKS.md (in
//! a binary of its own: the extra instantiations of the layer's generic
//! code would change how the compiler inlines it in pmu_cost's rows).
//!
//! The app is one route, `/users/{id}`, with a handler that answers an
//! empty body, driven by hand on this thread (ready, call, one poll of the
//! response, the body to its end). Each figure is what a way of attaching
//! adds to the bare router's request.

#![cfg(feature = "axum")]

#[path = "common/pmu_meter.rs"]
mod pmu_meter;
#[path = "common/pmu.rs"]
mod pmu_support;

use dynostats::tower::MeasureLayer;
use pmu_meter::{Meter, gate};
use pmu_support::{known_router, one_router_request, require_pmu};

#[test]
fn unsampled_layer_costs_per_way_of_attaching_stay_within_ten_percent() {
    if !require_pmu("unsampled_layer_costs_per_way_of_attaching_stay_within_ten_percent") {
        return;
    }
    let mut meter = Meter::open();
    // A mean of 10^15: the countdown drawn on the first call never runs out.
    let layer = MeasureLayer::new(1_000_000_000_000_000);
    let mut bare = known_router();
    // Around the whole router: one layer, but no route template (records
    // would be named <unmatched>).
    let mut around = tower::Layer::layer(&layer, known_router());
    // `Router::layer`: axum wraps every route, and boxes each route's
    // service and future a second time.
    let mut per_route = known_router().layer(layer.clone());
    let mut per_route_axum_body = known_router().layer(layer.clone().axum_body());
    // What axum's per-route layering costs any layer: one that does nothing.
    let mut noop = known_router().layer(tower::util::MapRequestLayer::new(
        |r: http::Request<axum::body::Body>| r,
    ));
    let mut cost = |service: &mut dyn FnMut()| {
        service();
        meter.cost(service)
    };
    let bare_cost = cost(&mut || one_router_request(&mut bare));
    let over_bare = |c: u64| c.saturating_sub(bare_cost);
    let measured = vec![
        ("router_bare", bare_cost),
        (
            "router_around_unsampled",
            over_bare(cost(&mut || one_router_request(&mut around))),
        ),
        (
            "router_noop_layer",
            over_bare(cost(&mut || one_router_request(&mut noop))),
        ),
        (
            "router_layer_unsampled",
            over_bare(cost(&mut || one_router_request(&mut per_route))),
        ),
        (
            "router_layer_axum_body_unsampled",
            over_bare(cost(&mut || one_router_request(&mut per_route_axum_body))),
        ),
    ];
    gate(&measured, |key| key.starts_with("router_"));
}
