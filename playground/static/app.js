// The playground's page: Slack as Token Desk's users see it. Every click is sent to the
// playground's JSON API, which signs it into the real app; the page only shows what the
// Slack stand-in then holds.

import { clientErrors, h, mrkdwn, renderBlocks, stateValues } from "./blockkit.js";

const COMMAND = "/tokens";
// Who the page signs in as until another is chosen: the demo's Account Administrator.
const FIRST_USER = "U0PLAYADM";
const PANES = { channel: "channel", home: "home", dms: "dms" };
const TOAST_SECONDS = 6;

const page = {
  data: null,
  version: 0,
  user: localStorage.getItem("playground.user") || FIRST_USER,
  pane: PANES[localStorage.getItem("playground.pane")] ?? PANES.channel,
  drafts: new Map(),
  openMenu: null,
  threadsOpen: new Set(),
  seenDms: new Map(),
  clientErrors: new Map(),
  gateway: null,
  topViewId: null,
  focusBeforeModal: null,
  errorsShown: null,
  focusRestored: false,
  shownItems: new Set(),
};

const $ = (id) => document.getElementById(id);

// -- talking to the playground --------------------------------------------------------------

let pending = 0;

function busy(change) {
  pending += change;
  $("busy").hidden = pending === 0;
}

async function api(path, body) {
  const request =
    body === undefined
      ? { headers: { Accept: "application/json" } }
      : {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify(body),
        };
  const response = await fetch(path, request);
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = null;
  }
  if (!response.ok) {
    const said = typeof answer?.error === "string" ? answer.error : response.statusText;
    throw new Error(`${response.status}: ${said}`);
  }
  return answer;
}

/** A POST the user caused: errors in a toast, then the page shows what changed. */
async function send(path, body) {
  busy(1);
  try {
    return await api(path, body);
  } catch (error) {
    toast(error.message);
    return null;
  } finally {
    busy(-1);
    refresh();
  }
}

let refreshes = 0;

async function refresh() {
  const ticket = ++refreshes;
  const user = page.user;
  let data;
  try {
    data = await api(`/api/state?user=${encodeURIComponent(user)}`);
  } catch (error) {
    if (ticket === refreshes) toast(`The playground did not answer: ${error.message}`);
    return;
  }
  if (ticket !== refreshes) return;
  const users = data.users ?? [];
  if (users.length && !users.some((user) => user.id === page.user)) {
    chooseUser(users[0].id);
    return;
  }
  page.data = data;
  page.version = Math.max(page.version, data.version ?? 0);
  render();
  // Whose state the page shows, once drawn: a user switch is done when this names them.
  document.body.dataset.shownUser = user;
}

async function waitForChanges() {
  for (;;) {
    try {
      const answer = await api(`/api/wait?version=${page.version}`);
      if ((answer?.version ?? 0) > page.version) await refresh();
    } catch {
      await new Promise((resume) => setTimeout(resume, 2000));
    }
  }
}

function toast(text) {
  const note = h(
    "div",
    { class: "toast", role: "alert" },
    h("span", {}, text),
    h(
      "button",
      {
        type: "button",
        class: "toast-close",
        "aria-label": "Dismiss",
        onclick: () => note.remove(),
      },
      "×",
    ),
  );
  $("toasts").append(note);
  setTimeout(() => note.remove(), TOAST_SECONDS * 1000);
}

// -- names ----------------------------------------------------------------------------------

function users() {
  return new Map((page.data?.users ?? []).map((user) => [user.id, user.name]));
}

function channels() {
  const channel = page.data?.channel;
  return new Map(channel ? [[channel.id, channel.name]] : []);
}

function nameOf(message) {
  if (message.bot) return "Token Desk";
  return users().get(message.user) ?? message.user ?? "Someone";
}

function timeOf(ts) {
  const moment = new Date(Number.parseFloat(ts) * 1000);
  if (Number.isNaN(moment.getTime())) return null;
  return h(
    "time",
    { class: "msg-time", datetime: moment.toISOString(), title: moment.toLocaleString("en-US") },
    moment.toLocaleTimeString("en-US", { hour: "numeric", minute: "2-digit" }),
  );
}

// -- surfaces -------------------------------------------------------------------------------

const menus = {
  isOpen: (key) => page.openMenu === key,
  toggle: (key) => {
    page.openMenu = page.openMenu === key ? null : key;
    render();
    if (page.openMenu) document.querySelector(".bk-menu [role=menuitem]")?.focus();
  },
  close: () => {
    if (page.openMenu === null) return;
    page.openMenu = null;
    render();
  },
};

/** What blockkit.js needs to show and operate the blocks of one surface. */
function surface(key, where, blocks, { errors = {}, interactive = true } = {}) {
  const context = {
    key: `${page.user}|${key}`,
    interactive,
    errors,
    users: users(),
    channels: channels(),
    drafts: page.drafts,
    menus,
    rerender: render,
    onAction: (block, element, detail) => {
      const action = {
        user: page.user,
        where,
        block_id: block.block_id,
        action_id: element.action_id,
        values: stateValues(blocks, context),
        ...detail,
      };
      send("/api/action", action);
    },
  };
  return context;
}

function content(message, key, where) {
  // What a person typed is shown from its text, as Slack formats it; the rich_text blocks
  // the stand-in attaches hold the same text unformatted.
  const typed = !message.bot && message.text;
  if (message.blocks?.length && !typed) {
    return renderBlocks(message.blocks, surface(key, where, message.blocks));
  }
  return h(
    "div",
    { class: "msg-text" },
    mrkdwn(message.text ?? "", { users: users(), channels: channels() }),
  );
}

function avatar(message) {
  const name = nameOf(message);
  const hue = [...(message.user ?? name)].reduce((sum, c) => sum + c.charCodeAt(0), 0) % 360;
  return h(
    "div",
    {
      class: `avatar${message.bot ? " avatar-app" : ""}`,
      style: message.bot ? undefined : `background: hsl(${hue} 45% 42%)`,
      "aria-hidden": "true",
    },
    name.slice(0, 1).toUpperCase(),
  );
}

function messageHead(message) {
  return h(
    "div",
    { class: "msg-head" },
    h("span", { class: "msg-name" }, nameOf(message)),
    message.bot ? h("span", { class: "badge" }, "APP") : null,
    timeOf(message.ts),
    message.edited ? h("span", { class: "msg-edited" }, "(edited)") : null,
  );
}

function replyBox(parent) {
  const key = `${page.user}|reply|${parent.ts}`;
  const box = h("textarea", {
    class: "reply-input",
    rows: 1,
    placeholder: "Reply…",
    "aria-label": `Reply in the thread of ${nameOf(parent)}'s message`,
    dataset: { draftKey: key },
    oninput: () => page.drafts.set(key, box.value),
    onkeydown: (event) => {
      if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
      event.preventDefault();
      const text = box.value.trim();
      if (!text) return;
      page.drafts.delete(key);
      box.value = "";
      send("/api/message", { user: page.user, text, thread_ts: parent.ts });
    },
  });
  box.value = page.drafts.get(key) ?? "";
  return box;
}

/** The replies under `message` of the channel or the DM (`kind`); a reply can be written in
 * the channel's threads only: the page posts in #token-desk alone. */
function thread(message, kind) {
  const replies = message.thread ?? [];
  const open = page.threadsOpen.has(message.ts);
  const count = replies.length;
  const toggle = h(
    "button",
    {
      type: "button",
      class: "thread-toggle",
      "aria-expanded": open ? "true" : "false",
      onclick: () => {
        if (open) page.threadsOpen.delete(message.ts);
        else page.threadsOpen.add(message.ts);
        render();
        if (!open) {
          const shown = document.querySelector(`.msg[data-ts="${CSS.escape(message.ts)}"] .thread`);
          shown?.scrollIntoView({ block: "nearest" });
          shown?.querySelector(".reply-input")?.focus({ preventScroll: true });
        }
      },
    },
    count ? `${count} ${count === 1 ? "reply" : "replies"}` : "Reply in thread",
    open ? " ▾" : " ▸",
  );
  if (!open) return count ? toggle : h("div", { class: "thread-start" }, toggle);
  return h(
    "div",
    { class: "thread" },
    toggle,
    replies.map((reply) => messageNode(reply, { kind, ts: reply.ts }, kind)),
    kind === "channel" ? replyBox(message) : null,
  );
}

function messageNode(message, where, kind, { ephemeral = false, threads = false } = {}) {
  const node = h(
    "article",
    {
      class: `msg${ephemeral ? " msg-ephemeral" : ""}`,
      dataset: { ts: message.ts ?? "", kind },
      "aria-label": `${ephemeral ? "Only visible to you: " : ""}${nameOf(message)}`,
    },
    avatar(message),
    h(
      "div",
      { class: "msg-body" },
      ephemeral
        ? h(
            "div",
            { class: "only-you" },
            h("span", { "aria-hidden": "true" }, "👁 "),
            "Only visible to you",
          )
        : null,
      messageHead(message),
      content(message, `${kind}:${message.ts}`, where),
      threads ? thread(message, kind) : null,
    ),
  );
  return node;
}

function byTs(a, b) {
  return Number.parseFloat(a.ts) - Number.parseFloat(b.ts);
}

function emptyNote(text) {
  return h("p", { class: "empty" }, text);
}

function channelItems() {
  const data = page.data;
  const channel = data.channel ?? { messages: [] };
  const items = [
    ...(channel.messages ?? []).map((message) => ({ message, ephemeral: false })),
    ...(data.ephemerals ?? []).map((message) => ({ message, ephemeral: true })),
  ].sort((a, b) => byTs(a.message, b.message));
  if (!items.length) {
    const name = channel.name ?? "token-desk";
    return [emptyNote(`The very beginning of #${name}. Type ${COMMAND} below for the token list.`)];
  }
  return items.map(({ message, ephemeral }) =>
    ephemeral
      ? messageNode(message, { kind: "ephemeral", ts: message.ts }, "ephemeral", {
          ephemeral: true,
        })
      : messageNode(message, { kind: "channel", ts: message.ts }, "channel", { threads: true }),
  );
}

function dmItems() {
  const dms = [...(page.data.dms ?? [])].sort(byTs);
  if (!dms.length) return [emptyNote("Token Desk has not written to you yet.")];
  return dms.map((message) =>
    messageNode(message, { kind: "dm", ts: message.ts }, "dm", {
      threads: (message.thread ?? []).length > 0,
    }),
  );
}

function homeItems() {
  const home = page.data.home;
  if (!home) return [emptyNote("Opening Token Desk's Home…")];
  const context = surface("home", { kind: "home", view_id: home.id }, home.blocks ?? []);
  return [h("div", { class: "home" }, renderBlocks(home.blocks ?? [], context))];
}

// -- modals ---------------------------------------------------------------------------------

function viewErrors(view) {
  return page.clientErrors.get(view.id) ?? view._errors ?? {};
}

function closeView(viewId) {
  page.clientErrors.delete(viewId);
  send("/api/close", { user: page.user, view_id: viewId });
}

function submitView(view, context) {
  const errors = clientErrors(view.blocks, context);
  if (Object.keys(errors).length) {
    page.clientErrors.set(view.id, errors);
    render();
    return;
  }
  page.clientErrors.delete(view.id);
  send("/api/submit", {
    user: page.user,
    view_id: view.id,
    values: stateValues(view.blocks, context),
  });
}

function modalNode(view, depth, top, bottomId) {
  const titleId = `modal-title-${view.id}`;
  const blocks = view.blocks ?? [];
  const context = surface(`modal:${view.id}`, { kind: "modal", view_id: view.id }, blocks, {
    errors: viewErrors(view),
    interactive: top,
  });
  const closeLabel = view.close ? textOf(view.close) : "Cancel";
  const dialog = h(
    "section",
    {
      class: `modal${top ? " modal-top" : " modal-below"}`,
      role: "dialog",
      "aria-modal": top ? "true" : undefined,
      "aria-labelledby": titleId,
      "aria-hidden": top ? undefined : "true",
      tabindex: "-1",
      inert: !top,
      style: `--depth: ${depth}`,
      dataset: { viewId: view.id, callbackId: view.callback_id ?? "" },
    },
    h(
      "header",
      { class: "modal-header" },
      h("h2", { id: titleId, class: "modal-title" }, textOf(view.title) || "Token Desk"),
      h(
        "button",
        {
          type: "button",
          class: "modal-x",
          "aria-label": "Close all",
          title: "Close",
          onclick: () => closeView(bottomId),
        },
        "×",
      ),
    ),
    h("div", { class: "modal-body" }, renderBlocks(blocks, context)),
    h(
      "footer",
      { class: "modal-footer" },
      h(
        "button",
        {
          type: "button",
          class: "bk-button bk-default modal-close",
          onclick: () => closeView(view.id),
        },
        closeLabel,
      ),
      view.submit
        ? h(
            "button",
            {
              type: "button",
              class: "bk-button bk-primary modal-submit",
              onclick: () => submitView(view, context),
            },
            textOf(view.submit),
          )
        : null,
    ),
  );
  return dialog;
}

function textOf(object) {
  if (!object) return "";
  return typeof object === "string" ? object : (object.text ?? "");
}

function renderModals() {
  const stack = page.data?.modals ?? [];
  const layer = $("modals");
  const app = $("app");
  const topId = stack.length ? stack[stack.length - 1].id : null;
  if (!stack.length) {
    layer.replaceChildren();
    app.inert = false;
    if (page.topViewId !== null && page.focusBeforeModal?.isConnected) {
      page.focusBeforeModal.focus();
      page.focusRestored = true;
    }
    page.topViewId = null;
    return;
  }
  if (page.topViewId === null) page.focusBeforeModal = document.activeElement;
  app.inert = true;
  const bottomId = stack[0].id;
  layer.replaceChildren(
    h(
      "div",
      { class: "modal-layer" },
      stack.map((view, index) =>
        modalNode(view, stack.length - 1 - index, index === stack.length - 1, bottomId),
      ),
    ),
  );
  const top = layer.querySelector(".modal-top");
  if (topId !== page.topViewId) {
    page.topViewId = topId;
    page.errorsShown = null;
    const first = top.querySelector(".modal-body input, .modal-body textarea, .modal-body select");
    (first ?? top).focus();
    page.focusRestored = true;
  }
  // New field errors: the first is brought into view, its field focused, as Slack does.
  const errors = JSON.stringify(viewErrors(stack[stack.length - 1]));
  if (errors !== "{}" && errors !== page.errorsShown) {
    const invalid = top.querySelector("[aria-invalid=true]");
    top.querySelector(".bk-has-error")?.scrollIntoView({ block: "nearest" });
    invalid?.focus({ preventScroll: true });
    page.focusRestored = true;
  }
  page.errorsShown = errors;
}

// -- the gateway box ------------------------------------------------------------------------

function gatewayResult(result) {
  const status = Number(result.status);
  const headers = Object.entries(result.headers ?? {});
  let body = result.body ?? "";
  if (typeof body !== "string") body = JSON.stringify(body, null, 2);
  else {
    try {
      body = JSON.stringify(JSON.parse(body), null, 2);
    } catch {
      // not JSON: shown as the gateway received it
    }
  }
  return h(
    "div",
    { class: "gateway-answer" },
    h(
      "div",
      { class: `gateway-status ${status >= 200 && status < 300 ? "ok" : "refused"}` },
      `HTTP ${status}`,
    ),
    headers.length
      ? h(
          "dl",
          { class: "gateway-headers" },
          headers.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, String(value))]),
        )
      : h("p", { class: "gateway-none" }, "No X-Token-* headers."),
    body
      ? h("pre", { class: "gateway-body" }, body)
      : h("p", { class: "gateway-none" }, "Empty body."),
  );
}

function renderGateway() {
  const result = page.gateway ?? page.data?.last_gateway ?? null;
  $("gateway-result").replaceChildren(...(result ? [gatewayResult(result)] : []));
}

async function tryGateway(event) {
  event.preventDefault();
  const secret = $("gateway-secret").value.trim();
  const sid = $("gateway-sid").value.trim();
  if (!secret) return;
  const answer = await send("/api/gateway", sid ? { secret, sid } : { secret });
  if (answer) {
    page.gateway = answer;
    renderGateway();
  }
}

// -- the whole page -------------------------------------------------------------------------

/** What had focus (an input of a surface, a menu item), to give it back after a render. */
function focusedKey() {
  const active = document.activeElement;
  if (!active || active === document.body) return null;
  if (active.dataset.draftKey) {
    return {
      selector: `[data-draft-key="${CSS.escape(active.dataset.draftKey)}"]`,
      start: active.selectionStart,
      end: active.selectionEnd,
    };
  }
  if (active.getAttribute("role") === "menuitem") {
    return {
      selector: `.bk-menu [role=menuitem][data-value="${CSS.escape(active.dataset.value)}"]`,
    };
  }
  if (active.dataset.menuKey)
    return { selector: `[data-menu-key="${CSS.escape(active.dataset.menuKey)}"]` };
  return null;
}

function restoreFocus(saved) {
  if (!saved) return;
  const node = document.querySelector(saved.selector);
  if (!node || node === document.activeElement) return;
  node.focus();
  if (
    saved.start !== undefined &&
    saved.start !== null &&
    typeof node.setSelectionRange === "function"
  ) {
    try {
      node.setSelectionRange(saved.start, saved.end);
    } catch {
      // not a text field (a date input): nothing to restore
    }
  }
}

function renderNav() {
  const data = page.data;
  const select = $("user-switch");
  const options = (data.users ?? []).map((user) =>
    h(
      "option",
      { value: user.id, selected: user.id === page.user },
      `${user.name} — ${user.title}`,
    ),
  );
  const labels = options.map((option) => option.textContent).join("\n");
  if (select.dataset.labels !== labels) {
    select.replaceChildren(...options);
    select.dataset.labels = labels;
  }
  select.value = page.user;
  for (const item of document.querySelectorAll("[data-pane]")) {
    const current = item.dataset.pane === page.pane;
    item.classList.toggle("current", current);
    if (item.getAttribute("role") === "tab")
      item.setAttribute("aria-selected", current ? "true" : "false");
    else if (current) item.setAttribute("aria-current", "page");
    else item.removeAttribute("aria-current");
  }
  const dms = (data.dms ?? []).length;
  if (page.pane === PANES.dms) page.seenDms.set(page.user, dms);
  const unread = dms - (page.seenDms.get(page.user) ?? 0);
  const badge = $("dm-badge");
  badge.hidden = unread <= 0;
  badge.textContent = unread > 0 ? String(unread) : "";
  badge.setAttribute("aria-label", `${unread} new`);
}

function renderPane() {
  const channel = page.data.channel ?? {};
  const inChannel = page.pane === PANES.channel;
  $("pane-title").replaceChildren(
    inChannel
      ? `# ${channel.name ?? "token-desk"}`
      : h("span", {}, "Token Desk ", h("span", { class: "badge" }, "APP")),
  );
  $("pane-tabs").hidden = inChannel;
  $("composer-form").hidden = !inChannel;
  $("dm-note").hidden = page.pane !== PANES.dms;
  $("composer").setAttribute("aria-label", `Message #${channel.name ?? "token-desk"}`);
  const body = $("pane-body");
  const atBottom = body.scrollHeight - body.scrollTop - body.clientHeight < 40;
  const scrolled = body.scrollTop;
  const items = inChannel ? channelItems() : page.pane === PANES.dms ? dmItems() : homeItems();
  const list = h("div", { class: `pane-list pane-${page.pane}` }, items);
  body.replaceChildren(list);
  if (page.pane === PANES.home) return;
  const paneKey = `${page.user}|${page.pane}`;
  const firstLook = !page.shownItems.has(paneKey);
  page.shownItems.add(paneKey);
  const fresh = [...list.querySelectorAll(":scope > .msg")].filter((node) => {
    const key = `${paneKey}|${node.dataset.kind}|${node.dataset.ts}`;
    const seen = page.shownItems.has(key);
    page.shownItems.add(key);
    return !seen;
  });
  if (firstLook) body.scrollTop = body.scrollHeight;
  else if (fresh.length && atBottom) {
    // A new message taller than the pane (the token list) is shown from its top.
    const first = fresh[0];
    if (first.offsetHeight > body.clientHeight) first.scrollIntoView({ block: "start" });
    else body.scrollTop = body.scrollHeight;
  } else body.scrollTop = scrolled;
}

function render() {
  if (!page.data) return;
  const focus = focusedKey();
  renderNav();
  renderPane();
  page.focusRestored = false;
  renderModals();
  renderGateway();
  if (!page.focusRestored) restoreFocus(focus);
}

// -- what the user does ---------------------------------------------------------------------

function openPane(pane) {
  const changed = page.pane !== pane;
  page.pane = pane;
  localStorage.setItem("playground.pane", pane);
  page.openMenu = null;
  render();
  if (pane === PANES.home) send("/api/home", { user: page.user });
  if (changed) $("pane-body").scrollTop = pane === PANES.home ? 0 : $("pane-body").scrollHeight;
}

function chooseUser(user) {
  page.user = user;
  localStorage.setItem("playground.user", user);
  page.openMenu = null;
  page.gateway = null;
  if (page.pane === PANES.home) send("/api/home", { user });
  else refresh();
}

function sendComposer(event) {
  event.preventDefault();
  const box = $("composer");
  const text = box.value.trim();
  if (!text) return;
  const command = /^\/tokens(?:\s+([\s\S]*))?$/.exec(text);
  if (text.startsWith("/") && !command) {
    toast(`${text.split(/\s/)[0]} is not a command here: only ${COMMAND} is installed.`);
    return;
  }
  box.value = "";
  const request = command
    ? send("/api/command", { user: page.user, text: (command[1] ?? "").trim() })
    : send("/api/message", { user: page.user, text });
  request.then((answer) => {
    if (answer === null && !box.value) box.value = text;
  });
}

function onKeydown(event) {
  if (event.key !== "Escape") return;
  if (page.openMenu !== null) {
    const key = page.openMenu;
    menus.close();
    document.querySelector(`[data-menu-key="${CSS.escape(key)}"]`)?.focus();
    event.preventDefault();
    return;
  }
  const stack = page.data?.modals ?? [];
  if (stack.length) {
    event.preventDefault();
    closeView(stack[stack.length - 1].id);
  }
}

function start() {
  $("user-switch").addEventListener("change", (event) => chooseUser(event.target.value));
  for (const item of document.querySelectorAll("[data-pane]")) {
    item.addEventListener("click", () => openPane(item.dataset.pane));
  }
  $("composer-form").addEventListener("submit", sendComposer);
  $("composer").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) sendComposer(event);
  });
  $("gateway-form").addEventListener("submit", tryGateway);
  document.addEventListener("keydown", onKeydown);
  document.addEventListener("click", () => menus.close());
  refresh().then(() => {
    if (page.pane === PANES.home) send("/api/home", { user: page.user });
  });
  waitForChanges();
}

start();
