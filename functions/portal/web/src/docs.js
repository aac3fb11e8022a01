// The API reference: Swagger UI over the provider's OpenAPI document (the
// session tells where it is: the configured spec, else the embedded one).
const status = document.getElementById("docs-status");

async function start() {
  let url = "openapi.yaml";
  const r = await fetch("api/session", { credentials: "same-origin" });
  if (r.ok) {
    url = (await r.json()).spec_url || url;
  } else {
    status.textContent = "Your portal session has ended. Open a new portal link from the app to read the API reference.";
    return;
  }
  window.SwaggerUIBundle({
    url,
    dom_id: "#swagger",
    deepLinking: false,
    tryItOutEnabled: false,
    onComplete: () => { status.textContent = "API reference loaded."; },
  });
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
