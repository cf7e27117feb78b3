// Swagger UI over this server's OpenAPI document. No validator badge: it would send the document to
// validator.swagger.io. Authorization entered in "Authorize" stays in this page's memory.
SwaggerUIBundle({
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
