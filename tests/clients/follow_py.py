"""Place, follow and cancel a call with the client openapi-python-client
generated from the served OpenAPI document (package ``c2d_client``, made by
the test). Prints one JSON line.

    python follow_py.py BASE_URL TOKEN CALL_REF
"""

import json
import sys
import time

from c2d_client import AuthenticatedClient
from c2d_client.api.calls import cancel_call, get_call, list_calls, place_call
from c2d_client.models import Call, CallRequest, Error, State

base_url, token, call_ref = sys.argv[1:4]
client = AuthenticatedClient(base_url=base_url, token=token)
placed = place_call.sync(client=client, body=CallRequest(agent="1001", callee="0215550100",
                                                         outbound_id="random", call_ref=call_ref))
assert isinstance(placed, Call), placed
call, seen = placed, [placed.state.value]
for _ in range(100):
    if call.state in (State.CONNECTED, State.ENDED):
        break
    time.sleep(0.2)
    call = get_call.sync(client=client, id=call.id)
    assert isinstance(call, Call), call
    if seen[-1] != call.state.value:
        seen.append(call.state.value)
ended = cancel_call.sync(client=client, id=call.id)
assert isinstance(ended, Call), ended
listed = list_calls.sync(client=client, call_ref=call_ref, state=[State.ENDED])
missing = get_call.sync(client=client, id="0" * 32)
assert isinstance(missing, Error), missing
print(json.dumps({"seen": seen, "ended": ended.to_dict(), "listed": [c.id for c in listed.calls],
                  "missing": missing.error, "answered_at_type": type(ended.answered_at).__name__}))
