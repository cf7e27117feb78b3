"""schemathesis hooks for scripts/schemathesis (loaded through SCHEMATHESIS_HOOKS).

A header value holding a control character (other than tab) is not an HTTP field value
(RFC 9110 §5.5): hyper refuses such a message itself, before rollcall sees it, with a bare 400
(issue 17 accepts that). schemathesis generates them; each such character is sent as a space
instead, which keeps an invalid value invalid (no header pattern of the document admits a space
where the control character stood) and makes the message HTTP.
"""

import schemathesis


def _printable(value):
    if not isinstance(value, str):
        return value
    spaced = "".join(" " if (ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F else c for c in value)
    # HTTP drops white space around a value; requests refuses to send it.
    return spaced.strip(" \t")


@schemathesis.hook
def before_call(context, case, **kwargs):
    if case.headers:
        case.headers = {name: _printable(value) for name, value in case.headers.items()}
