"""schemathesis hooks for scripts/schemathesis (loaded through SCHEMATHESIS_HOOKS).

A header value with a line break continued by a space is an obsolete line folding, which
RFC 9112 §5.2 lets a server refuse: hyper answers such a request itself, before rollcall sees
it, with a bare 400 (issue 17 accepts that). Those are malformed HTTP messages rather than
requests the document describes, so they are not generated.
"""

import schemathesis


def _folded(headers):
    return any("\n" in str(value) or "\r" in str(value) for value in (headers or {}).values())


@schemathesis.hook
def before_generate_case(context, strategy):
    return strategy.filter(lambda case: not _folded(case.headers))
