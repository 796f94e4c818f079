// The deployment routes of the control API (docs/api.md): deploy, promote,
// abort, rollback, deployment history, and the server-sent event streams.
// Added to the control socket's routes by ApiServer; the handlers run on the
// control thread, where the Controller lives, and borrow it.
#pragma once

#include "api/http_routes.h"
#include "controller/controller.h"

namespace cutover {

// POST /v1/services/{name}/deploy|promote|abort|rollback,
// GET /v1/services/{name}/deployments, GET /v1/services/{name}/deployments/{id},
// GET /v1/services/{name}/deployments/{id}/events (SSE: the steps so far, then
// live until it finishes), GET /v1/events (SSE: every event from now on).
void AddDeploymentRoutes(HttpRoutes& routes, Controller& controller);

}  // namespace cutover
