// /docs: Swagger UI (vendored) on this gateway's /openapi.json; "try it out" calls this gateway.
// A key given to "Authorize" is sent as is; without one, the console's key (if set) is sent.
"use strict";

const KEY_STORAGE = "mlbuffet-api-key";

window.addEventListener("DOMContentLoaded", () => {
  const ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    tryItOutEnabled: true,
    persistAuthorization: false,
    // Requests go to the page's own origin (the document names no server).
    requestInterceptor: (request) => {
      const key = sessionStorage.getItem(KEY_STORAGE);
      if (key && !request.headers.Authorization) request.headers.Authorization = "Bearer " + key;
      return request;
    },
  });
  window.ui = ui;
});
