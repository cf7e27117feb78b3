// Entry point: shows the page the path names (the deploy list, or one deploy), or the sign-in form
// while this tab holds no token.

import { ApiError, api, session, uiRoot, whenUnauthorized } from "./api.js";
import { h, problemBox } from "./dom.js";
import { showDeploy } from "./deploy.js";
import { showList } from "./list.js";

const main = document.getElementById("main");
const sessionBox = document.getElementById("session");
let stopPage = () => {};

function showSession() {
  if (!session.token()) {
    sessionBox.replaceChildren();
    return;
  }
  const signOut = h("button", { type: "button", class: "quiet" }, "Sign out");
  signOut.addEventListener("click", () => {
    session.signOut();
    showSignIn();
  });
  sessionBox.replaceChildren(signOut);
}

function showSignIn(notice) {
  stopPage();
  stopPage = () => {};
  showSession();
  document.title = "Sign in · rollcall";
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-help",
  });
  const feedback = h("div", { class: "feedback" });
  const form = h(
    "form",
    { class: "sign-in card" },
    h("h1", {}, "Sign in"),
    notice ? h("p", { class: "notice", role: "status" }, notice) : null,
    h(
      "p",
      { id: "token-help" },
      "Paste an API token. This tab keeps it until it closes and sends it to rollcall in a header; " +
        "the token's scopes decide which deploys you see and whether you may cancel them.",
    ),
    h("label", { for: "token" }, "API token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    feedback,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    try {
      await api("v1/deploys?limit=1", { token });
      session.signIn(token);
      start();
    } catch (error) {
      const shown =
        error.status === 401
          ? new ApiError(401, {
              title: "Not accepted",
              detail: "rollcall does not know this token: it may be mistyped or revoked.",
            })
          : error;
      feedback.replaceChildren(problemBox(shown));
      input.focus();
    }
  });
  main.replaceChildren(form);
  input.focus();
}

function start() {
  if (!session.token()) {
    showSignIn();
    return;
  }
  showSession();
  const path = location.pathname.startsWith(uiRoot.pathname)
    ? location.pathname.slice(uiRoot.pathname.length)
    : "";
  const deploy = /^deploys\/([^/]+)$/.exec(path);
  stopPage = deploy ? showDeploy(main, decodeURIComponent(deploy[1])) : showList(main);
}

whenUnauthorized(() => {
  session.signOut();
  showSignIn("rollcall no longer accepts your token (revoked?): sign in again.");
});

start();
