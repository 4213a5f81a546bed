"""Where untrusted Slack input becomes typed values.

Only the actor's user ID is trusted (Bolt's signature check and the role gate vouch for
it). Everything else in a payload — a slash command's text, a button's or option's value,
`state.values`, a form's fields, `private_metadata`, `response_url` — may have been crafted
or replayed, so listeners read it only through this package: each reader takes the raw value,
bounds its size and returns a typed value, or "nothing" (None, an empty default) when the
value is not what Token Desk itself wrote. Numbers never reach int() or SQLite unchecked,
text SQLite cannot store (a lone surrogate, which JSON can carry) is dropped, and a
`response_url` is followed only if it points at Slack.

Four modules: `command_text` (what follows `/tokens`), `payloads` (button and menu values,
`state.values`, form fields), `modal_context` (`private_metadata`) and `gateway` (who
presented a secret to the auth check, as the API gateway says).
"""
