import sys, threading, time, concurrent.futures as cf
sys.path.insert(0, "/work/main/bindings/python/tests")
from conftest import idp  # noqa
import test_fastmcp_hostile as H
from test_fastmcp_hostile import server  # noqa

def form(client, code, verifier, redirect=H.REDIRECT):
    f = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
         "client_id": client["client_id"], "redirect_uri": redirect}
    if client.get("client_secret"): f["client_secret"] = client["client_secret"]
    return f

def alive(server, tokens):
    return server.mcp("Bearer " + tokens["access_token"]).status_code

def refresh_ok(server, client, rt):
    r = server.refresh(client, rt)
    return r.status_code, r.text[:120]

def out(*a):
    print("REPORT", *a, flush=True)

def test_other_client_right_verifier(server):
    c, code, v, p = server.login()
    t = server.exchange(c, code, v)
    other = server.register()
    r = server.token_request(form(other, code, v))
    out("other-client right verifier:", r.status_code, r.text[:150], "| victim AT:", alive(server, t))

def test_other_client_wrong_verifier(server):
    c, code, v, p = server.login()
    t = server.exchange(c, code, v)
    other = server.register()
    r = server.token_request(form(other, code, "x" * 64))
    out("other-client wrong verifier:", r.status_code, r.text[:150], "| victim AT:", alive(server, t))

def test_other_confidential_client(server):
    c, code, v, p = server.login()
    t = server.exchange(c, code, v)
    other = server.register(token_endpoint_auth_method="client_secret_post")
    r = server.token_request(form(other, code, v))
    out("other conf client:", r.status_code, r.text[:150], "| victim AT:", alive(server, t))
    bad = dict(other, client_secret="wrong-secret-xxxxxxxx")
    c2, code2, v2, _ = server.login()
    t2 = server.exchange(c2, code2, v2)
    r = server.token_request(form(bad, code2, v2))
    out("other conf client wrong secret:", r.status_code, r.text[:150], "| victim AT:", alive(server, t2))
    r = server.token_request({"grant_type": "authorization_code", "code": code2, "code_verifier": v2,
                              "client_id": "nonexistent-client", "redirect_uri": H.REDIRECT})
    out("unregistered client_id:", r.status_code, r.text[:150], "| victim AT:", alive(server, t2))

def test_same_client_wrong_verifier_and_unrelated_grant(server):
    c, code, v, p = server.login()
    _, other_grant = server.tokens(client=c)
    t = server.exchange(c, code, v)
    assert alive(server, t) == 200
    r = server.token_request(form(c, code, "y" * 64))
    out("same client wrong verifier:", r.status_code, r.text[:150], "| AT:", alive(server, t),
        "RT:", refresh_ok(server, c, t["refresh_token"]), "| unrelated grant AT:", alive(server, other_grant),
        "RT:", refresh_ok(server, c, other_grant["refresh_token"])[0])
    r = server.token_request(form(c, code, v))
    out("second replay:", r.status_code, r.text[:150])

def test_concurrent(server):
    for i in range(5):
        c, code, v, p = server.login()
        f = form(c, code, v)
        barrier = threading.Barrier(2)
        def go():
            barrier.wait()
            return server.token_request(f)
        with cf.ThreadPoolExecutor(2) as ex:
            rs = list(ex.map(lambda _: go(), range(2)))
        sts = [r.status_code for r in rs]
        win = [r for r in rs if r.status_code == 200]
        st = [alive(server, w.json()) for w in win]
        out(f"concurrent #{i}:", sts, [r.text[:90] for r in rs if r.status_code != 200], "| winner AT:", st,
            "RT:", [refresh_ok(server, c, w.json()["refresh_token"])[0] for w in win])
        r = server.token_request(f)
        out(f"  later replay #{i}:", r.status_code, r.text[:80], "| winner AT:", [alive(server, w.json()) for w in win])

def test_after_refresh(server):
    c, code, v, p = server.login()
    t = server.exchange(c, code, v)
    r1 = server.refresh(c, t["refresh_token"]); assert r1.status_code == 200
    t2 = r1.json()
    r2 = server.refresh(c, t2["refresh_token"]); assert r2.status_code == 200
    t3 = r2.json()
    r = server.token_request(form(c, code, v))
    out("after 2 refreshes replay:", r.status_code, r.text[:100], "| AT1,2,3:", alive(server, t), alive(server, t2),
        alive(server, t3), "| RT3:", refresh_ok(server, c, t3["refresh_token"]))
