// Latchkey's API reference: renders one of this server's OpenAPI documents
// (operations by tag, parameters, schemas with examples, error codes) and sends
// "Try it" requests to this server. Text from documents is inserted as text only.
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete"];
let documentRoot = null;

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Text with `code` spans, as the documents write it.
function prose(text) {
  const span = el("span");
  String(text || "").split(/(`[^`]*`)/).forEach((part) => {
    if (part.startsWith("`") && part.endsWith("`") && part.length > 1) span.append(el("code", {}, part.slice(1, -1)));
    else span.append(part);
  });
  return span;
}

function resolve(schema, seen) {
  if (!schema || !schema.$ref) return schema || {};
  const name = schema.$ref.split("/").pop();
  if (seen.has(name)) return {};
  seen.add(name);
  return resolve(documentRoot.components.schemas[name], seen);
}

function typeName(schema) {
  const types = [].concat(schema.type || []);
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.oneOf) return "one of";
  if (schema.allOf) return "all of";
  if (types.includes("array")) return `array of ${typeName(schema.items || {})}`;
  return types.filter((t) => t !== "null").join(" | ") + (types.includes("null") ? " (nullable)" : "") || "any";
}

// A nested list of a schema's fields.
function schemaTree(schema, depth, seen) {
  const list = el("ul", { class: "schema" });
  const resolved = resolve(schema, new Set(seen));
  if (depth > 6) return list;
  const variants = resolved.oneOf || resolved.anyOf;
  if (variants) {
    variants.forEach((variant, index) => {
      list.append(el("li", {}, el("span", { class: "type" }, `option ${index + 1}: ${typeName(variant)}`),
        schemaTree(variant, depth + 1, seen)));
    });
    return list;
  }
  const parts = resolved.allOf || [resolved];
  for (const part of parts) {
    const object = resolve(part, new Set(seen));
    const required = new Set(object.required || []);
    for (const [name, property] of Object.entries(object.properties || {})) {
      const inner = resolve(property, new Set(seen));
      const item = el("li", {}, el("span", { class: "name" }, name), el("span", { class: "type" }, typeName(property)),
        required.has(name) ? el("span", { class: "required" }, "required") : null);
      if (inner.description || property.description) item.append(" ", prose(property.description || inner.description));
      if (inner.enum && inner.enum.length <= 60) item.append(el("div", { class: "type" }, "one of: ", inner.enum.join(", ")));
      const nested = [].concat(inner.type || []).includes("array") ? resolve(inner.items, new Set(seen)) : inner;
      if (nested.properties || nested.oneOf || nested.allOf) item.append(schemaTree(nested, depth + 1, seen));
      list.append(item);
    }
  }
  return list;
}

// An example value built from a schema's examples, enums and types.
function example(schema, depth) {
  const resolved = resolve(schema, new Set());
  if (depth > 6) return null;
  if (resolved.example !== undefined) return resolved.example;
  if (resolved.examples && resolved.examples.length) return resolved.examples[0];
  if (resolved.enum && resolved.enum.length) return resolved.enum[0];
  if (resolved.oneOf || resolved.anyOf) return example((resolved.oneOf || resolved.anyOf)[0], depth + 1);
  if (resolved.allOf) return Object.assign({}, ...resolved.allOf.map((part) => example(part, depth + 1)));
  const types = [].concat(resolved.type || []);
  if (types.includes("object") || resolved.properties) {
    const value = {};
    for (const [name, property] of Object.entries(resolved.properties || {})) value[name] = example(property, depth + 1);
    return value;
  }
  if (types.includes("array")) return [example(resolved.items || {}, depth + 1)];
  if (types.includes("string")) return "string";
  if (types.includes("integer") || types.includes("number")) return resolved.minimum || 0;
  if (types.includes("boolean")) return true;
  return null;
}

function jsonSchemaOf(content) {
  if (!content) return null;
  const type = Object.keys(content)[0];
  return type ? { type, schema: content[type].schema || {} } : null;
}

function parametersTable(parameters) {
  const table = el("table", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "In"), el("th", {}, "Type"), el("th", {}, "Description")));
  for (const parameter of parameters) {
    table.append(el("tr", {}, el("td", {}, el("code", {}, parameter.name), parameter.required ? " *" : ""),
      el("td", {}, parameter.in), el("td", {}, typeName(parameter.schema || {})), el("td", {}, prose(parameter.description))));
  }
  return table;
}

function responsesSection(responses) {
  const section = el("div");
  for (const [status, response] of Object.entries(responses)) {
    const body = jsonSchemaOf(response.content);
    const row = el("div", { class: "response" }, el("span", { class: "status" }, status), prose(response.description));
    if (body && Number(status) >= 400 && body.schema.$ref) {
      // Every error of a surface has one body, described once under "error format".
      row.append(" ", el("span", { class: "type" }, `(${typeName(body.schema)})`));
    } else if (body && body.type === "application/json") {
      row.append(schemaTree(body.schema, 0, new Set()));
    } else if (body) {
      row.append(" ", el("span", { class: "type" }, `(${body.type})`));
    }
    section.append(row);
  }
  return section;
}

function tryForm(path, method, operation) {
  const form = el("form", { class: "try" }, el("strong", {}, "Try it"));
  const inputs = {};
  for (const parameter of operation.parameters || []) {
    const input = el("input", { name: parameter.name, placeholder: parameter.name });
    inputs[parameter.name] = { input, where: parameter.in };
    form.append(el("label", {}, `${parameter.name} (${parameter.in}) `, input));
  }
  const body = jsonSchemaOf(operation.requestBody && operation.requestBody.content);
  let textarea = null;
  if (body && body.type === "application/json") {
    textarea = el("textarea", { name: "body", spellcheck: "false" });
    textarea.value = JSON.stringify(example(body.schema, 0), null, 2);
    form.append(el("label", {}, "Body (JSON)", textarea));
  }
  const output = el("pre", { class: "result", hidden: "" });
  form.append(el("button", { type: "submit" }, "Send"), output);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let url = path;
    const query = new URLSearchParams();
    for (const [name, { input, where }] of Object.entries(inputs)) {
      if (where === "path") url = url.replace(`{${name}}`, encodeURIComponent(input.value));
      else if (where === "query" && input.value !== "") query.set(name, input.value);
    }
    if ([...query].length) url += `?${query}`;
    const headers = {};
    const bearer = document.getElementById("bearer").value.trim();
    const apiKey = document.getElementById("api-key").value.trim();
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    if (apiKey) headers["X-API-Key"] = apiKey;
    const init = { method: method.toUpperCase(), headers, credentials: "same-origin" };
    if (textarea) {
      headers["Content-Type"] = "application/json";
      init.body = textarea.value;
    }
    output.hidden = false;
    output.textContent = "…";
    try {
      const response = await fetch(url, init);
      const text = await response.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON: show as is */ }
      output.textContent = `${response.status} ${response.statusText}\n${shown}`;
    } catch (error) {
      output.textContent = `The request failed: ${error}`;
    }
  });
  return form;
}

function operationView(path, method, operation) {
  const secured = (operation.security || []).flatMap((requirement) => Object.keys(requirement));
  const summaryText = (operation.description || operation.summary || "").split("\n")[0];
  const details = el("details", { class: "operation", id: operation.operationId ? `${method}-${path}` : "" },
    el("summary", {}, el("span", { class: `method ${method}` }, method), el("span", { class: "path" }, path),
      el("span", { class: "summary" }, prose(summaryText)),
      secured.length ? el("span", { class: "auth" }, `auth: ${[...new Set(secured)].join(" or ")}`) : null));
  const body = el("div", { class: "body" });
  if (operation.description) body.append(el("p", {}, prose(operation.description)));
  if ((operation.parameters || []).length) body.append(el("h4", {}, "Parameters"), parametersTable(operation.parameters));
  const request = jsonSchemaOf(operation.requestBody && operation.requestBody.content);
  if (request) {
    body.append(el("h4", {}, `Request body (${request.type})`), schemaTree(request.schema, 0, new Set()));
    body.append(el("div", { class: "type" }, "Example"), el("pre", {}, JSON.stringify(example(request.schema, 0), null, 2)));
  }
  body.append(el("h4", {}, "Responses"), responsesSection(operation.responses || {}));
  body.append(tryForm(path, method, operation));
  details.append(body);
  return details;
}

function render(api) {
  documentRoot = api;
  const intro = document.getElementById("intro");
  intro.replaceChildren(el("h2", {}, api.info.title, " ", el("span", { class: "type" }, `v${api.info.version}`)),
    el("p", {}, prose(api.info.description)));
  const byTag = new Map((api.tags || []).map((tag) => [tag.name, []]));
  for (const [path, item] of Object.entries(api.paths || {})) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      const tag = (item[method].tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([path, method, item[method]]);
    }
  }
  const operations = document.getElementById("operations");
  operations.replaceChildren();
  const tagDescriptions = new Map((api.tags || []).map((tag) => [tag.name, tag.description]));
  for (const [tag, entries] of byTag) {
    if (!entries.length) continue;
    operations.append(el("h2", { class: "tag" }, tag));
    if (tagDescriptions.get(tag)) operations.append(el("p", {}, prose(tagDescriptions.get(tag))));
    for (const [path, method, operation] of entries) operations.append(operationView(path, method, operation));
  }
  const schemas = (api.components && api.components.schemas) || {};
  const errorName = ["ErrorBody", "PrismeError", "MudbaseError", "LerianError", "FlashbackError"].find((name) => schemas[name]);
  if (errorName) {
    operations.append(el("h2", { class: "tag", id: "error-format" }, "error format"),
      el("p", {}, `Every error answer has this body (${errorName}):`), schemaTree({ $ref: `#/components/schemas/${errorName}` }, 0, new Set()));
  }
  const codes = schemas.ErrorCode;
  if (codes && codes.enum) {
    operations.append(el("h2", { class: "tag" }, "error codes"), el("p", {}, prose(codes.description)),
      el("ul", { class: "codes" }, ...codes.enum.map((code) => el("li", {}, el("code", {}, code)))));
  }
  document.body.dataset.rendered = String(operations.querySelectorAll("details.operation").length);
}

async function load() {
  const links = [...document.querySelectorAll("#surfaces a")];
  const wanted = links.find((link) => link.hash === location.hash) || links[0];
  links.forEach((link) => link.classList.toggle("current", link === wanted));
  document.body.removeAttribute("data-rendered");
  try {
    const response = await fetch(wanted.dataset.document);
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    render(await response.json());
  } catch (error) {
    document.getElementById("status").textContent = `The document could not be loaded: ${error.message}`;
  }
}

window.addEventListener("hashchange", load);
load();
