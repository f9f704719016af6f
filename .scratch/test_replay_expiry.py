import sys, time
sys.path.insert(0, "/work/main/bindings/python/tests")
from conftest import idp  # noqa
import test_fastmcp_hostile as H
from fastmcp_auth.fastmcp import OAuthProxy as _P

def _wrapped(**kw):
    kw["core_options"] = {**kw.get("core_options", {}), "authorization_code_ttl": 2}
    return _P(**kw)
H.OAuthProxy = _wrapped
from test_fastmcp_hostile import server  # noqa
from test_replay_attack import form, alive, refresh_ok, out

def test_after_expiry(server):
    c, code, v, p = server.login()
    t = server.exchange(c, code, v)
    time.sleep(3.5)
    r = server.token_request(form(c, code, v))
    out("replay after code expiry:", r.status_code, r.text[:120], "| AT:", alive(server, t),
        "RT:", refresh_ok(server, c, t["refresh_token"])[0])
    c, code, v, p = server.login()
    time.sleep(3.5)
    r = server.token_request(form(c, code, v))
    out("first redemption after expiry:", r.status_code, r.text[:120])
