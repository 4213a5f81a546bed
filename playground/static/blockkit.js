// Block Kit and mrkdwn, laid out as Slack lays them out, built with createElement and
// textContent only: every text here may come from a hostile token name.

// The shortcodes Token Desk writes, and a few common ones; any other stays as typed.
const EMOJI = {
  arrow_up: "⬆️",
  arrows_counterclockwise: "🔄",
  bell: "🔔",
  bulb: "💡",
  bust_in_silhouette: "👤",
  busts_in_silhouette: "👥",
  calendar: "📆",
  clock3: "🕒",
  eyes: "👀",
  fire: "🔥",
  heavy_check_mark: "✔️",
  hourglass: "⌛",
  hourglass_flowing_sand: "⏳",
  information_source: "ℹ️",
  key: "🔑",
  large_green_circle: "🟢",
  link: "🔗",
  lock: "🔒",
  mag: "🔍",
  no_entry: "⛔",
  octagonal_sign: "🛑",
  red_circle: "🔴",
  rotating_light: "🚨",
  shield: "🛡️",
  stop_sign: "🛑",
  tada: "🎉",
  "+1": "👍",
  thumbsup: "👍",
  unlock: "🔓",
  warning: "⚠️",
  wastebasket: "🗑️",
  wave: "👋",
  white_check_mark: "✅",
  white_circle: "⚪",
  x: "❌",
  zzz: "💤",
};

const ENTITIES = { amp: "&", lt: "<", gt: ">" };

/** mrkdwn's three escapes undone: what the reader sees. */
export function decode(text) {
  return text.replace(/&(amp|lt|gt);/g, (_, name) => ENTITIES[name]);
}

export function emojify(text) {
  return text.replace(/:([a-z0-9_+-]+):/g, (whole, name) => EMOJI[name] ?? whole);
}

/** An element: attributes set one by one, children as nodes or text (never parsed). */
export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    // Through the CSSOM: the page's Content-Security-Policy refuses inline style attributes.
    else if (name === "style") node.style.cssText = value;
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

/** Only http(s) links are followed; anything else is shown as its label. */
function safeUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function link(url, label) {
  const href = safeUrl(url);
  if (href === null) return document.createTextNode(label);
  return h("a", { href, target: "_blank", rel: "noopener noreferrer", class: "bk-link" }, label);
}

// -- dates, as `<!date^…>` renders them in the viewer's time zone -------------------------

const MONTHS_SHORT = { month: "short", day: "numeric", year: "numeric" };

function ordinal(day) {
  const tens = day % 100;
  if (tens >= 11 && tens <= 13) return `${day}th`;
  return `${day}${{ 1: "st", 2: "nd", 3: "rd" }[day % 10] ?? "th"}`;
}

function longDate(moment, withWeekday) {
  const month = moment.toLocaleDateString("en-US", { month: "long" });
  const text = `${month} ${ordinal(moment.getDate())}, ${moment.getFullYear()}`;
  if (!withWeekday) return text;
  return `${moment.toLocaleDateString("en-US", { weekday: "long" })}, ${text}`;
}

function dayOffset(moment, now) {
  const startOf = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  return Math.round((startOf(moment) - startOf(now)) / 86_400_000);
}

function pretty(moment, now, otherwise) {
  return { "-1": "yesterday", 0: "today", 1: "tomorrow" }[dayOffset(moment, now)] ?? otherwise;
}

const AGO_UNITS = [
  ["year", 365 * 86_400],
  ["month", 30 * 86_400],
  ["day", 86_400],
  ["hour", 3_600],
  ["minute", 60],
];

function ago(moment, now) {
  const seconds = Math.round((moment.getTime() - now.getTime()) / 1000);
  if (Math.abs(seconds) < 60) return "just now";
  const words = new Intl.RelativeTimeFormat("en", { numeric: "always" });
  for (const [unit, size] of AGO_UNITS) {
    if (Math.abs(seconds) >= size) return words.format(Math.trunc(seconds / size), unit);
  }
  return "just now";
}

function pad(number) {
  return String(number).padStart(2, "0");
}

export function formatDateToken(token, moment, now = new Date()) {
  const time = { hour: "numeric", minute: "2-digit" };
  switch (token) {
    case "date_num":
      return `${moment.getFullYear()}-${pad(moment.getMonth() + 1)}-${pad(moment.getDate())}`;
    case "date":
      return longDate(moment, false);
    case "date_short":
      return moment.toLocaleDateString("en-US", MONTHS_SHORT);
    case "date_long":
      return longDate(moment, true);
    case "date_pretty":
      return pretty(moment, now, longDate(moment, false));
    case "date_short_pretty":
      return pretty(moment, now, moment.toLocaleDateString("en-US", MONTHS_SHORT));
    case "date_long_pretty":
      return pretty(moment, now, longDate(moment, true));
    case "time":
      return moment.toLocaleTimeString("en-US", time);
    case "time_secs":
      return moment.toLocaleTimeString("en-US", { ...time, second: "2-digit" });
    case "ago":
      return ago(moment, now);
    default:
      return null;
  }
}

/** `<!date^SECONDS^FORMAT[^LINK]|FALLBACK>` (the part after `!date^`). */
function slackDate(body) {
  const bar = body.indexOf("|");
  const fallback = decode(bar < 0 ? "" : body.slice(bar + 1));
  const [seconds, format = "", url] = (bar < 0 ? body : body.slice(0, bar)).split("^");
  const moment = new Date(Number(seconds) * 1000);
  if (!/^\d+$/.test(seconds ?? "") || Number.isNaN(moment.getTime())) {
    return document.createTextNode(fallback);
  }
  const shown = decode(format).replace(/\{(\w+)\}/g, (whole, token) => {
    return formatDateToken(token, moment) ?? whole;
  });
  const node = h(
    "time",
    { datetime: moment.toISOString(), title: moment.toLocaleString("en-US"), class: "bk-date" },
    shown,
  );
  return url && safeUrl(decode(url))
    ? h(
        "a",
        {
          href: safeUrl(decode(url)),
          target: "_blank",
          rel: "noopener noreferrer",
          class: "bk-link",
        },
        node,
      )
    : node;
}

// -- mrkdwn -------------------------------------------------------------------------------

function isSpace(character) {
  return character === undefined || /\s/.test(character);
}

function isWordCharacter(character) {
  return character !== undefined && /[\p{L}\p{N}]/u.test(character);
}

/** `<…>`: a mention, a channel, a special, a date, a link, or (not Slack's) plain text. */
function angle(body, context) {
  const bar = body.indexOf("|");
  const target = bar < 0 ? body : body.slice(0, bar);
  const label = bar < 0 ? null : decode(body.slice(bar + 1));
  if (target.startsWith("@")) {
    const id = target.slice(1);
    const name = context.users?.get(id) ?? (label ? label.replace(/^@/, "") : id);
    return h("span", { class: "bk-mention", dataset: { user: id } }, `@${name}`);
  }
  if (target.startsWith("#")) {
    const id = target.slice(1);
    const name = context.channels?.get(id) ?? (label ? label.replace(/^#/, "") : id);
    return h("span", { class: "bk-mention bk-channel" }, `#${name}`);
  }
  if (target.startsWith("!")) {
    const special = target.slice(1);
    if (special.startsWith("date^")) return slackDate(body.slice("!date^".length));
    if (special.startsWith("subteam^")) {
      const id = special.slice("subteam^".length);
      const name = context.groups?.get(id) ?? (label ? label.replace(/^@/, "") : id);
      return h("span", { class: "bk-mention" }, `@${name}`);
    }
    return h("span", { class: "bk-mention bk-special" }, `@${label ?? decode(special)}`);
  }
  const url = decode(target);
  if (/^https?:\/\//i.test(url)) return link(url, label ?? url);
  if (/^mailto:/i.test(url)) return document.createTextNode(label ?? url.slice(7));
  return document.createTextNode(decode(`<${body}>`));
}

/** The index of `<…>` or a code span's end starting at `index`, or -1. */
function spanEnd(text, index) {
  const closing = text[index] === "`" ? "`" : ">";
  for (let at = index + 1; at < text.length; at += 1) {
    if (text[at] === "\n" || (closing === ">" && text[at] === "<")) return -1;
    if (text[at] === closing) return closing === "`" && at === index + 1 ? -1 : at;
  }
  return -1;
}

/** Where the emphasis opened at `start - 1` with `mark` closes on its line, or -1. */
function closingMark(text, start, mark) {
  for (let at = start; at < text.length; at += 1) {
    const character = text[at];
    if (character === "\n") return -1;
    if (character === "`" || character === "<") {
      const end = spanEnd(text, at);
      if (end > 0) {
        at = end;
        continue;
      }
    }
    if (
      character === mark &&
      at > start &&
      !isSpace(text[at - 1]) &&
      !isWordCharacter(text[at + 1])
    ) {
      return at;
    }
  }
  return -1;
}

const EMPHASIS = { "*": "b", _: "i", "~": "s" };

function inline(text, context) {
  const fragment = document.createDocumentFragment();
  let plain = "";
  const flush = () => {
    if (plain) fragment.append(document.createTextNode(emojify(decode(plain))));
    plain = "";
  };
  for (let at = 0; at < text.length; at += 1) {
    const character = text[at];
    if (character === "`" || character === "<") {
      const end = spanEnd(text, at);
      if (end > 0) {
        flush();
        const body = text.slice(at + 1, end);
        fragment.append(
          character === "`" ? h("code", { class: "bk-code" }, decode(body)) : angle(body, context),
        );
        at = end;
        continue;
      }
    }
    if (
      !context.verbatim &&
      (character === "h" || character === "H") &&
      !isWordCharacter(text[at - 1]) &&
      /^https?:\/\//i.test(text.slice(at, at + 8))
    ) {
      const url = /^https?:\/\/[^\s<>]+[^\s<>.,;:!?)'"]/i.exec(text.slice(at));
      if (url) {
        flush();
        fragment.append(link(decode(url[0]), decode(url[0])));
        at += url[0].length - 1;
        continue;
      }
    }
    if (
      EMPHASIS[character] &&
      !isWordCharacter(text[at - 1]) &&
      !isSpace(text[at + 1]) &&
      text[at + 1] !== character
    ) {
      const end = closingMark(text, at + 1, character);
      if (end > 0) {
        flush();
        fragment.append(h(EMPHASIS[character], {}, inline(text.slice(at + 1, end), context)));
        at = end;
        continue;
      }
    }
    plain += character;
  }
  flush();
  return fragment;
}

const QUOTE = /^(&gt;|>) ?/;

/** Lines, with runs of `> ` lines as quotes. */
function paragraphs(text, context) {
  const fragment = document.createDocumentFragment();
  const lines = text.split("\n");
  for (let at = 0; at < lines.length;) {
    const quoted = QUOTE.test(lines[at]);
    const run = [];
    while (at < lines.length && QUOTE.test(lines[at]) === quoted) {
      run.push(quoted ? lines[at].replace(QUOTE, "") : lines[at]);
      at += 1;
    }
    const body = inline(run.join("\n"), context);
    if (quoted) fragment.append(h("blockquote", { class: "bk-quote" }, body));
    else {
      fragment.append(body);
      if (at < lines.length) fragment.append(document.createTextNode("\n"));
    }
  }
  return fragment;
}

/** mrkdwn as Slack shows it; `verbatim` leaves bare URLs unlinked. */
export function mrkdwn(text, context = {}, { verbatim = false } = {}) {
  const inner = { ...context, verbatim };
  const node = h("span", { class: "bk-mrkdwn" });
  const pieces = String(text ?? "").split(/```([\s\S]*?)```/);
  pieces.forEach((piece, index) => {
    if (index % 2 === 1) {
      node.append(
        h("pre", { class: "bk-pre" }, decode(piece.replace(/^\n/, "").replace(/\n$/, ""))),
      );
      return;
    }
    let body = piece;
    if (index > 0) body = body.replace(/^\n/, "");
    if (index < pieces.length - 1) body = body.replace(/\n$/, "");
    if (body) node.append(paragraphs(body, inner));
  });
  return node;
}

/** A text object: mrkdwn, or plain text (emoji shortcodes shown unless `emoji: false`). */
export function textObject(object, context = {}) {
  if (object === undefined || object === null) return document.createTextNode("");
  if (typeof object === "string") return document.createTextNode(object);
  if (object.type === "mrkdwn") return mrkdwn(object.text, context, { verbatim: object.verbatim });
  return document.createTextNode(plainText(object));
}

export function plainText(object) {
  if (object === undefined || object === null) return "";
  if (typeof object === "string") return object;
  return object.emoji === false ? object.text : emojify(object.text ?? "");
}

// -- rich_text (what a person typed) --------------------------------------------------------

function richElement(element, context) {
  const style = element.style ?? {};
  let node;
  switch (element.type) {
    case "text":
      node = document.createTextNode(element.text ?? "");
      break;
    case "link":
      node = link(element.url ?? "", element.text || element.url || "");
      break;
    case "user":
      node = angle(`@${element.user_id}`, context);
      break;
    case "usergroup":
      node = angle(`!subteam^${element.usergroup_id}`, context);
      break;
    case "channel":
      node = angle(`#${element.channel_id}`, context);
      break;
    case "broadcast":
      node = h("span", { class: "bk-mention bk-special" }, `@${element.range}`);
      break;
    case "emoji":
      node = document.createTextNode(EMOJI[element.name] ?? `:${element.name}:`);
      break;
    default:
      node = document.createTextNode("");
  }
  if (style.code) node = h("code", { class: "bk-code" }, node);
  if (style.strike) node = h("s", {}, node);
  if (style.italic) node = h("i", {}, node);
  if (style.bold) node = h("b", {}, node);
  return node;
}

function richSection(section, context) {
  return (section.elements ?? []).map((element) => richElement(element, context));
}

function richText(block, context) {
  const node = h("div", { class: "bk-rich" });
  for (const part of block.elements ?? []) {
    if (part.type === "rich_text_section") node.append(h("span", {}, richSection(part, context)));
    else if (part.type === "rich_text_preformatted") {
      node.append(h("pre", { class: "bk-pre" }, richSection(part, context)));
    } else if (part.type === "rich_text_quote") {
      node.append(h("blockquote", { class: "bk-quote" }, richSection(part, context)));
    } else if (part.type === "rich_text_list") {
      const items = (part.elements ?? []).map((item) => h("li", {}, richSection(item, context)));
      node.append(h(part.style === "ordered" ? "ol" : "ul", { class: "bk-list" }, items));
    }
  }
  return node;
}

// -- interactive elements and their state -------------------------------------------------

const STATEFUL = {
  plain_text_input: "value",
  static_select: "selected_option",
  multi_static_select: "selected_options",
  users_select: "selected_user",
  datepicker: "selected_date",
  radio_buttons: "selected_option",
  checkboxes: "selected_options",
};

function options(element) {
  return [...(element.options ?? []), ...(element.option_groups ?? []).flatMap((g) => g.options)];
}

function optionState(option) {
  return { text: option.text, value: option.value };
}

/** The state Slack holds for `element` before anyone touched it. */
function initialState(element) {
  const state = { type: element.type };
  switch (element.type) {
    case "plain_text_input":
      state.value = element.initial_value ?? null;
      break;
    case "static_select":
    case "radio_buttons":
      state.selected_option = element.initial_option ? optionState(element.initial_option) : null;
      break;
    case "multi_static_select":
    case "checkboxes":
      state.selected_options = (element.initial_options ?? []).map(optionState);
      break;
    case "users_select":
      state.selected_user = element.initial_user ?? null;
      break;
    case "datepicker":
      state.selected_date = element.initial_date ?? null;
      break;
    default:
      return null;
  }
  return state;
}

/** `blocks`, each with a block_id: Slack names those the app left unnamed, and the
 * playground's stand-in calls them `auto<index>`. */
function named(blocks) {
  return (blocks ?? []).map((block, index) =>
    block.block_id ? block : { ...block, block_id: `auto${index}` },
  );
}

/** Each interactive element of `blocks`, with its block. */
function* elements(blocks) {
  for (const block of named(blocks)) {
    if (block.type === "actions")
      for (const element of block.elements ?? []) yield [block, element];
    else if (block.type === "section" && block.accessory) yield [block, block.accessory];
    else if (block.type === "input" && block.element) yield [block, block.element];
  }
}

function draftKey(context, block, element) {
  return `${context.key}|${block.block_id ?? ""}|${element.action_id ?? ""}`;
}

function currentState(context, block, element) {
  return context.drafts.get(draftKey(context, block, element)) ?? initialState(element);
}

/** `state.values` of a surface: {block_id: {action_id: state}}, as Slack sends it. */
export function stateValues(blocks, context) {
  const values = {};
  for (const [block, element] of elements(blocks)) {
    if (!STATEFUL[element.type] || !element.action_id) continue;
    values[block.block_id] ??= {};
    values[block.block_id][element.action_id] = currentState(context, block, element);
  }
  return values;
}

function isEmpty(state) {
  const field = state[STATEFUL[state.type]];
  return (
    field === null || field === undefined || field === "" || (Array.isArray(field) && !field.length)
  );
}

/** The errors Slack's client shows itself before a submit: required inputs left empty, and
 * texts shorter than their `min_length`. */
export function clientErrors(blocks, context) {
  const errors = {};
  for (const block of named(blocks)) {
    if (block.type !== "input" || !block.element) continue;
    const state = currentState(context, block, block.element);
    if (!state) continue;
    if (!block.optional && isEmpty(state))
      errors[block.block_id] = "Please complete this required field.";
    const minimum = block.element.min_length;
    if (
      state.type === "plain_text_input" &&
      minimum &&
      state.value &&
      state.value.length < minimum
    ) {
      errors[block.block_id] = `Please enter at least ${minimum} characters.`;
    }
  }
  return errors;
}

let uniqueId = 0;

function nextId(prefix) {
  uniqueId += 1;
  return `${prefix}-${uniqueId}`;
}

function button(block, element, context) {
  const style =
    element.style === "primary" || element.style === "danger" ? element.style : "default";
  const url = element.url ? safeUrl(element.url) : null;
  return h(
    "button",
    {
      type: "button",
      class: `bk-button bk-${style}`,
      disabled: !context.interactive,
      dataset: { actionId: element.action_id ?? "", value: element.value ?? "" },
      onclick: () => {
        if (url) window.open(url, "_blank", "noopener,noreferrer");
        context.onAction(
          block,
          element,
          element.value === undefined ? {} : { value: element.value },
        );
      },
    },
    plainText(element.text),
  );
}

function overflow(block, element, context) {
  const key = draftKey(context, block, element);
  const open = context.menus.isOpen(key);
  const menuId = nextId("bk-menu");
  const trigger = h(
    "button",
    {
      type: "button",
      class: "bk-button bk-default bk-overflow",
      "aria-haspopup": "menu",
      "aria-expanded": open ? "true" : "false",
      "aria-controls": menuId,
      "aria-label": "More actions",
      title: "More actions",
      disabled: !context.interactive,
      dataset: { actionId: element.action_id ?? "", menuKey: key },
      onclick: (event) => {
        event.stopPropagation();
        context.menus.toggle(key);
      },
    },
    h("span", { "aria-hidden": "true" }, "⋮"),
  );
  const wrapper = h("div", { class: "bk-overflow-wrap" }, trigger);
  if (open) {
    const items = (element.options ?? []).map((option) =>
      h(
        "li",
        { role: "none" },
        h(
          "button",
          {
            type: "button",
            role: "menuitem",
            class: "bk-menu-item",
            dataset: { value: option.value },
            onclick: (event) => {
              event.stopPropagation();
              context.menus.close();
              context.onAction(block, element, { selected: option.value });
            },
          },
          plainText(option.text),
        ),
      ),
    );
    const menu = h(
      "ul",
      {
        id: menuId,
        role: "menu",
        class: "bk-menu",
        "aria-label": "More actions",
        onkeydown: (event) => moveInMenu(event, trigger, context),
        onclick: (event) => event.stopPropagation(),
      },
      items,
    );
    wrapper.append(menu);
  }
  return wrapper;
}

function moveInMenu(event, trigger, context) {
  const items = [...event.currentTarget.querySelectorAll("[role=menuitem]")];
  const at = items.indexOf(document.activeElement);
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const step = event.key === "ArrowDown" ? 1 : -1;
    items[(at + step + items.length) % items.length]?.focus();
  } else if (event.key === "Escape") {
    event.preventDefault();
    event.stopPropagation();
    context.menus.close();
    trigger.focus();
  }
}

/** Whether choosing in `element` sends an action at once (outside inputs, or in an input
 * block with dispatch_action). */
function dispatches(block) {
  return block.type !== "input" || block.dispatch_action === true;
}

function setDraft(context, block, element, state) {
  context.drafts.set(draftKey(context, block, element), state);
}

/** An input block's control is named by its label (`for` its id); any other by what it asks. */
function labelAttributes(inputId, placeholder) {
  return inputId ? { id: inputId } : { "aria-label": placeholder || "Choose" };
}

function staticSelect(block, element, context, inputId) {
  const state = currentState(context, block, element);
  const chosen = state.selected_option?.value ?? "";
  const placeholder = plainText(element.placeholder) || "Select an item";
  const select = h(
    "select",
    {
      class: "bk-select",
      disabled: !context.interactive,
      dataset: { actionId: element.action_id ?? "", draftKey: draftKey(context, block, element) },
      ...labelAttributes(inputId, placeholder),
      onchange: () => {
        const option = options(element).find((o) => o.value === select.value);
        setDraft(context, block, element, {
          type: element.type,
          selected_option: option ? optionState(option) : null,
        });
        if (option && dispatches(block))
          context.onAction(block, element, { selected: option.value });
      },
    },
    h("option", { value: "", disabled: true, selected: chosen === "" }, placeholder),
  );
  const groups = element.option_groups
    ? element.option_groups.map((group) =>
        h(
          "optgroup",
          { label: plainText(group.label) },
          group.options.map((o) => optionNode(o, chosen)),
        ),
      )
    : (element.options ?? []).map((o) => optionNode(o, chosen));
  select.append(...groups);
  return select;
}

function optionNode(option, chosen) {
  return h(
    "option",
    { value: option.value, selected: option.value === chosen },
    plainText(option.text),
  );
}

function multiSelect(block, element, context, inputId) {
  const state = currentState(context, block, element);
  const chosen = state.selected_options ?? [];
  const values = new Set(chosen.map((o) => o.value));
  const update = (next) => {
    setDraft(context, block, element, { type: element.type, selected_options: next });
    if (dispatches(block)) {
      context.onAction(block, element, { selected: next.map((o) => o.value) });
    } else context.rerender();
  };
  const chips = chosen.map((option) =>
    h(
      "span",
      { class: "bk-chip" },
      plainText(option.text),
      h(
        "button",
        {
          type: "button",
          class: "bk-chip-remove",
          disabled: !context.interactive,
          "aria-label": `Remove ${plainText(option.text)}`,
          onclick: () => update(chosen.filter((o) => o.value !== option.value)),
        },
        "×",
      ),
    ),
  );
  const left = options(element).filter((o) => !values.has(o.value));
  const placeholder = chosen.length
    ? "Add another…"
    : plainText(element.placeholder) || "Select items";
  const adder = h(
    "select",
    {
      class: "bk-select",
      disabled: !context.interactive || !left.length,
      dataset: { actionId: element.action_id ?? "", draftKey: draftKey(context, block, element) },
      ...labelAttributes(inputId, placeholder),
      onchange: () => {
        const option = left.find((o) => o.value === adder.value);
        if (option) update([...chosen, optionState(option)]);
      },
    },
    h("option", { value: "", selected: true, disabled: true }, placeholder),
    left.map((o) => optionNode(o, "")),
  );
  return h("div", { class: "bk-multi" }, chips, adder);
}

function usersSelect(block, element, context, inputId) {
  const state = currentState(context, block, element);
  const chosen = state.selected_user ?? "";
  const placeholder = plainText(element.placeholder) || "Select a user";
  const people = [...(context.users ?? new Map())];
  if (chosen && !context.users?.has(chosen)) people.push([chosen, chosen]);
  const select = h(
    "select",
    {
      class: "bk-select",
      disabled: !context.interactive,
      dataset: { actionId: element.action_id ?? "", draftKey: draftKey(context, block, element) },
      ...labelAttributes(inputId, placeholder),
      onchange: () => {
        setDraft(context, block, element, {
          type: element.type,
          selected_user: select.value || null,
        });
        if (select.value && dispatches(block))
          context.onAction(block, element, { selected: select.value });
      },
    },
    h("option", { value: "", disabled: true, selected: chosen === "" }, placeholder),
    people.map(([id, name]) => h("option", { value: id, selected: id === chosen }, `@${name}`)),
  );
  return select;
}

function datePicker(block, element, context, inputId) {
  const state = currentState(context, block, element);
  const input = h("input", {
    type: "date",
    class: "bk-date-input",
    value: state.selected_date ?? "",
    disabled: !context.interactive,
    dataset: { actionId: element.action_id ?? "", draftKey: draftKey(context, block, element) },
    ...labelAttributes(inputId, plainText(element.placeholder) || "Select a date"),
    onchange: () => {
      setDraft(context, block, element, { type: element.type, selected_date: input.value || null });
      if (input.value && dispatches(block)) context.onAction(block, element, { date: input.value });
    },
  });
  return input;
}

function textInput(block, element, context, inputId) {
  const state = currentState(context, block, element);
  const onEnter =
    block.dispatch_action === true &&
    (element.dispatch_action_config?.trigger_actions_on ?? ["on_enter_pressed"]).includes(
      "on_enter_pressed",
    );
  const attributes = {
    id: inputId,
    class: element.multiline ? "bk-textarea" : "bk-text-input",
    placeholder: plainText(element.placeholder) || undefined,
    maxlength: element.max_length ?? undefined,
    disabled: !context.interactive,
    autocomplete: "off",
    dataset: { actionId: element.action_id ?? "", draftKey: draftKey(context, block, element) },
    oninput: (event) => {
      setDraft(context, block, element, { type: element.type, value: event.target.value || null });
    },
    onkeydown: (event) => {
      if (event.key !== "Enter" || event.isComposing || !onEnter) return;
      if (element.multiline && event.shiftKey) return;
      event.preventDefault();
      context.onAction(block, element, { value: event.target.value });
    },
  };
  const input = element.multiline
    ? h("textarea", { ...attributes, rows: 4 })
    : h("input", { ...attributes, type: "text" });
  input.value = state.value ?? "";
  return input;
}

function element(block, element, context, inputId = null) {
  switch (element.type) {
    case "button":
      return button(block, element, context);
    case "overflow":
      return overflow(block, element, context);
    case "static_select":
      return staticSelect(block, element, context, inputId);
    case "multi_static_select":
      return multiSelect(block, element, context, inputId);
    case "users_select":
      return usersSelect(block, element, context, inputId);
    case "datepicker":
      return datePicker(block, element, context, inputId);
    case "plain_text_input":
      return textInput(block, element, context, inputId);
    case "image":
      return h("span", { class: "bk-image-alt" }, element.alt_text ?? "");
    default:
      return h("span", { class: "bk-unsupported" }, `[${element.type} not shown]`);
  }
}

// -- blocks -------------------------------------------------------------------------------

function section(block, context) {
  const body = h("div", { class: "bk-section-body" });
  if (block.text)
    body.append(h("div", { class: "bk-section-text" }, textObject(block.text, context)));
  if (block.fields?.length) {
    body.append(
      h(
        "div",
        { class: "bk-fields" },
        block.fields.map((field) => h("div", { class: "bk-field" }, textObject(field, context))),
      ),
    );
  }
  const node = h("div", { class: "bk-block bk-section" }, body);
  if (block.accessory)
    node.append(h("div", { class: "bk-accessory" }, element(block, block.accessory, context)));
  return node;
}

function input(block, context) {
  const inputId = nextId("bk-input");
  const hintId = nextId("bk-hint");
  const errorId = nextId("bk-error");
  const error = context.errors?.[block.block_id];
  const label = h(
    "label",
    { class: "bk-label", for: inputId },
    plainText(block.label),
    block.optional ? h("span", { class: "bk-optional" }, " (optional)") : null,
  );
  const control = element(block, block.element ?? {}, context, inputId);
  const field = control.id === inputId ? control : control.querySelector(`#${inputId}`);
  const described = [block.hint ? hintId : null, error ? errorId : null].filter(Boolean).join(" ");
  if (field && described) field.setAttribute("aria-describedby", described);
  if (field && error) field.setAttribute("aria-invalid", "true");
  return h(
    "div",
    { class: `bk-block bk-input${error ? " bk-has-error" : ""}` },
    label,
    control,
    error ? h("div", { id: errorId, class: "bk-error", role: "alert" }, error) : null,
    block.hint ? h("div", { id: hintId, class: "bk-hint" }, plainText(block.hint)) : null,
  );
}

function block(block, context) {
  let node;
  switch (block.type) {
    case "header":
      node = h("h3", { class: "bk-block bk-header" }, plainText(block.text));
      break;
    case "section":
      node = section(block, context);
      break;
    case "divider":
      node = h("hr", { class: "bk-block bk-divider" });
      break;
    case "context":
      node = h(
        "div",
        { class: "bk-block bk-context" },
        (block.elements ?? []).map((item) =>
          item.type === "image"
            ? h("span", { class: "bk-image-alt" }, item.alt_text ?? "")
            : h("span", { class: "bk-context-item" }, textObject(item, context)),
        ),
      );
      break;
    case "actions":
      node = h(
        "div",
        { class: "bk-block bk-actions" },
        (block.elements ?? []).map((e) => element(block, e, context)),
      );
      break;
    case "input":
      node = input(block, context);
      break;
    case "rich_text":
      node = richText(block, context);
      break;
    case "image":
      node = h("div", { class: "bk-block bk-image-alt" }, block.alt_text ?? "");
      break;
    default:
      node = h("div", { class: "bk-block bk-unsupported" }, `[${block.type} block not shown]`);
  }
  node.dataset.blockId = block.block_id;
  return node;
}

/**
 * `blocks` as DOM. `context`: {key (the surface, for drafts and menus), interactive, users
 * and channels (Map id → name), errors ({block_id: message}), drafts (a Map), menus
 * ({isOpen, toggle, close}), onAction(block, element, detail), rerender()}.
 */
export function renderBlocks(blocks, context) {
  const node = h("div", { class: "bk-blocks" });
  for (const item of named(blocks)) node.append(block(item, context));
  return node;
}
