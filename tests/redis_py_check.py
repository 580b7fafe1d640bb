"""redis-py against kv_server, with redis-py's default settings (RESP3
through HELLO 3, pipelines as MULTI/EXEC transactions), then RESP2 and a
password. The blocking pops run on threads, woken by the main thread's
pushes. The checks pass against redis-server 7.0.15 as well. Run by
tests/kv_server.rs as

    python redis_py_check.py PORT [PASSWORD_PORT PASSWORD]

Prints one line per group of checks and "redis-py: N checks passed" at the
end; any failed check raises, so the exit status is non-zero."""

import socket
import sys
import threading
import time

import redis

checks = 0


def check(got, expected):
    global checks
    if got != expected:
        raise AssertionError(f"got {got!r}, expected {expected!r}")
    checks += 1


def raises(error, call, *args):
    global checks
    try:
        call(*args)
    except error as caught:
        checks += 1
        return caught
    raise AssertionError(f"{call.__name__}{args} did not raise {error.__name__}")


def strings_and_keys(r):
    check(r.ping(), True)
    check(r.set("s", "hello"), True)
    check(r.get("s"), b"hello")
    check(r.append("s", " world"), 11)
    check(r.strlen("s"), 11)
    check(r.getrange("s", 0, 4), b"hello")
    check(r.setnx("s", "x"), False)
    check(r.getset("s", "v"), b"hello world")
    check(r.getdel("s"), b"v")
    check(r.exists("s"), 0)
    check(r.mset({"l1": "ohmytext", "l2": "mynewtext"}), True)
    check(r.lcs("l1", "l2"), b"mytext")
    check(r.lcs("l1", "l2", len=True), 6)
    check(r.rpush("ids", 3, 1, 2), 3)
    check(r.mset({"score_1": 30, "score_2": 10, "score_3": 20, "name_1": "a", "name_2": "b"}), True)
    check(r.sort("ids"), [b"1", b"2", b"3"])
    check(r.sort("ids", by="score_*", get=["#", "name_*"]), [b"2", b"b", b"3", None, b"1", b"a"])
    check(r.sort("ids", desc=True, start=0, num=2, store="top"), 2)
    check(r.lrange("top", 0, -1), [b"3", b"2"])
    check(r.sort_ro("ids", alpha=True), [b"1", b"2", b"3"])
    check(r.delete("ids", "top", "score_1", "score_2", "score_3", "name_1", "name_2"), 7)
    check(r.delete("l1", "l2"), 2)
    check(r.incr("n"), 1)
    check(r.incrby("n", 9), 10)
    check(r.incrbyfloat("f", 1.5), 1.5)
    check(r.mset({"a": "1", "b": "2"}), True)
    check(r.mget("a", "b", "nope"), [b"1", b"2", None])
    check(r.msetnx({"a": "x", "c": "3"}), False)
    check(r.type("a"), b"string")
    check(r.rename("a", "a2"), True)
    check(r.copy("a2", "a3"), True)
    check(sorted(r.keys("a*")), [b"a2", b"a3"])
    check(sorted(r.scan_iter(match="a*", count=1)), [b"a2", b"a3"])
    check(r.delete("a2", "a3", "nope"), 2)
    check(r.unlink("b"), 1)
    check(r.dbsize(), 2)
    check(r.randomkey() in (b"n", b"f"), True)


def expiry(r):
    check(r.set("e", "v", ex=100), True)
    check(r.ttl("e"), 100)
    check(0 < r.pttl("e") <= 100000, True)
    check(r.expire("e", 200, gt=True), True)
    check(r.expire("e", 50, gt=True), False)
    check(r.persist("e"), True)
    check(r.ttl("e"), -1)
    check(r.pexpireat("e", 99999999999000), True)
    check(r.expiretime("e"), 99999999999)
    check(r.getex("e", persist=True), b"v")
    check(r.ttl("nokey"), -2)


def hashes(r):
    check(r.hset("h", mapping={"f1": "v1", "f2": "v2"}), 2)
    check(r.hget("h", "f1"), b"v1")
    check(r.hgetall("h"), {b"f1": b"v1", b"f2": b"v2"})
    check(sorted(r.hkeys("h")), [b"f1", b"f2"])
    check(sorted(r.hvals("h")), [b"v1", b"v2"])
    check(r.hlen("h"), 2)
    check(r.hexists("h", "f1"), True)
    check(r.hmget("h", ["f1", "nope"]), [b"v1", None])
    check(r.hincrby("h", "n", 5), 5)
    check(r.hincrbyfloat("h", "x", 2.5), 2.5)
    check(r.hsetnx("h", "f1", "x"), False)
    check(r.hdel("h", "f1", "nope"), 1)
    check(dict(r.hscan_iter("h", match="f*")), {b"f2": b"v2"})
    raises(redis.ResponseError, r.hget, "s-is-string", "f") if r.set("s-is-string", "v") else None
    error = raises(redis.ResponseError, r.hget, "s-is-string", "f")
    check(str(error), "WRONGTYPE Operation against a key holding the wrong kind of value")


def lists(r):
    check(r.rpush("l", "a", "b", "c"), 3)
    check(r.lpush("l", "z"), 4)
    check(r.lrange("l", 0, -1), [b"z", b"a", b"b", b"c"])
    check(r.llen("l"), 4)
    check(r.lindex("l", -1), b"c")
    check(r.lset("l", 0, "first"), True)
    check(r.lpop("l"), b"first")
    check(r.rpop("l", 2), [b"c", b"b"])
    check(r.rpush("l", "x", "a", "x"), 4)
    check(r.lrem("l", 0, "x"), 2)
    check(r.linsert("l", "before", "a", "w"), 3)
    check(r.lpos("l", "a"), 1)
    check(r.ltrim("l", 0, 1), True)
    check(r.lrange("l", 0, -1), [b"w", b"a"])
    check(r.lmove("l", "l2", "LEFT", "RIGHT"), b"w")


def wait_blocked(r, count):
    deadline = time.monotonic() + 10
    while r.info("clients")["blocked_clients"] != count:
        if time.monotonic() > deadline:
            raise AssertionError(f"never {count} blocked clients")
        time.sleep(0.005)


def in_thread(call, *args):
    """Runs call(*args) on a thread; returns the thread and a list that
    will hold its result (or the exception it raised)."""
    result = []

    def run():
        try:
            got = call(*args)
            # RESP2 gives BLPOP's pair as a tuple, RESP3 as a list.
            result.append(list(got) if isinstance(got, tuple) else got)
        except redis.RedisError as caught:
            result.append(caught)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def joined(thread, result):
    thread.join(10)
    check(thread.is_alive(), False)
    return result[0]


def blocking(r):
    # Timeouts, in fractions of a second: None, and never early.
    started = time.monotonic()
    check(r.blpop(["q"], 0.1), None)
    check(time.monotonic() - started >= 0.1, True)
    check(r.brpop(["q", "q2"], 0.05), None)
    check(r.blmove("q", "d", 0.05, "LEFT", "RIGHT"), None)
    check(r.brpoplpush("q", "d", 0.05), None)
    check(r.blmpop(0.05, 2, "q", "q2", direction="LEFT"), None)
    check(str(raises(redis.ResponseError, r.blpop, ["q"], -1)), "timeout is negative")
    # A list there already: popped at once, the first key in order.
    r.rpush("q2", "a", "b", "c")
    check(list(r.blpop(["q", "q2"], 0)), [b"q2", b"a"])
    check(list(r.brpop(["q2"], 1)), [b"q2", b"c"])
    check(r.blmove("q2", "d", 0, "LEFT", "RIGHT"), b"b")
    check(r.brpoplpush("d", "d2", 0), b"b")
    # A thread blocked in BLPOP is woken by another client's LPUSH.
    thread, result = in_thread(r.blpop, ["w"], 0)
    wait_blocked(r, 1)
    check(r.lpush("w", "v"), 1)
    check(joined(thread, result), [b"w", b"v"])
    # Several blocked on one key: first come, first served.
    waiters = []
    for index in range(3):
        waiters.append(in_thread(r.brpop, ["f"], 5))
        wait_blocked(r, index + 1)
    check(r.rpush("f", "1", "2", "3"), 3)
    check([joined(*waiter) for waiter in waiters], [[b"f", b"3"], [b"f", b"2"], [b"f", b"1"]])
    # BLMOVE, BRPOPLPUSH and BLMPOP woken.
    thread, result = in_thread(r.blmove, "m", "m2", 0, "RIGHT", "LEFT")
    wait_blocked(r, 1)
    r.rpush("m", "x", "y")
    check(joined(thread, result), b"y")
    thread, result = in_thread(r.brpoplpush, "n", "m2", 0)
    wait_blocked(r, 1)
    r.rpush("n", "z")
    check(joined(thread, result), b"z")
    thread, result = in_thread(lambda: r.blmpop(0, 2, "none", "m2", direction="LEFT", count=5))
    check(joined(thread, result), [b"m2", [b"z", b"y"]])
    # In a transaction a blocking pop never blocks.
    pipe = r.pipeline()
    pipe.blpop(["nokey"], 0).blmove("nokey", "d", 0, "LEFT", "LEFT").blmpop(0, 1, "nokey", direction="LEFT")
    check(pipe.execute(), [None, None, None])
    # Pushes in a transaction wake the blocked after EXEC.
    thread, result = in_thread(r.blpop, ["t"], 0)
    wait_blocked(r, 1)
    pipe = r.pipeline()
    pipe.lpush("t", "a").lpush("t", "b")
    check(pipe.execute(), [1, 2])
    check(joined(thread, result), [b"t", b"b"])
    check(r.lrange("t", 0, -1), [b"a"])
    # A blocked client that disconnects is forgotten: nobody takes the push.
    kwargs = r.connection_pool.connection_kwargs
    raw = socket.create_connection((kwargs["host"], kwargs["port"]))
    raw.sendall(b"*3\r\n$5\r\nBLPOP\r\n$4\r\ngone\r\n$1\r\n0\r\n")
    wait_blocked(r, 1)
    raw.close()
    wait_blocked(r, 0)
    check(r.rpush("gone", "x"), 1)
    check(r.llen("gone"), 1)
    # CLIENT UNBLOCK, with the timeout's reply or the UNBLOCKED error.
    other = redis.Redis(**{key: kwargs[key] for key in ("host", "port", "protocol") if key in kwargs})
    other_id = other.client_id()
    thread, result = in_thread(other.blpop, ["u"], 0)
    wait_blocked(r, 1)
    check(r.client_unblock(other_id), True)
    check(joined(thread, result), None)
    thread, result = in_thread(other.blpop, ["u"], 0)
    wait_blocked(r, 1)
    check(r.client_unblock(other_id, error=True), True)
    check(str(joined(thread, result)), "UNBLOCKED client unblocked via CLIENT UNBLOCK")
    check(r.client_unblock(other_id), False)
    other.close()


def sets(r):
    check(r.sadd("s1", "a", "b", "c"), 3)
    check(r.sadd("s2", "b", "c", "d"), 3)
    check(r.smembers("s1"), {b"a", b"b", b"c"})
    check(r.sismember("s1", "a"), True)
    check(r.smismember("s1", ["a", "z"]), [True, False])
    check(r.scard("s1"), 3)
    check(r.sinter("s1", "s2"), {b"b", b"c"})
    check(r.sunion("s1", "s2"), {b"a", b"b", b"c", b"d"})
    check(r.sdiff("s1", "s2"), {b"a"})
    check(r.sinterstore("s3", ["s1", "s2"]), 2)
    check(r.srem("s1", "a"), 1)
    check(r.spop("s3") in (b"b", b"c"), True)
    check(r.srandmember("s2") in (b"b", b"c", b"d"), True)
    check(r.smove("s2", "s1", "d"), True)
    check(set(r.sscan_iter("s1")), {b"b", b"c", b"d"})


def zsets(r):
    check(r.zadd("z", {"a": 1, "b": 2.5, "c": 3}), 3)
    check(r.zscore("z", "b"), 2.5)
    check(r.zincrby("z", 1, "a"), 2.0)
    check(r.zcard("z"), 3)
    check(r.zrange("z", 0, -1), [b"a", b"b", b"c"])
    check(r.zrange("z", 0, -1, withscores=True), [(b"a", 2.0), (b"b", 2.5), (b"c", 3.0)])
    check(r.zrevrange("z", 0, 0, withscores=True), [(b"c", 3.0)])
    check(r.zrangebyscore("z", 2.2, "+inf"), [b"b", b"c"])
    check(r.zrank("z", "c"), 2)
    check(r.zcount("z", "-inf", 2.5), 2)
    check(r.zmscore("z", ["a", "nope"]), [2.0, None])
    check(r.zpopmin("z"), [(b"a", 2.0)])
    check(r.zpopmax("z", 2), [(b"c", 3.0), (b"b", 2.5)])
    check(r.exists("z"), 0)
    check(r.zadd("z", {"m": 1}, incr=True), 1.0)
    check(dict(r.zscan_iter("z")), {b"m": 1.0})
    # A sliding window, as rate limiters keep one: drop what is older
    # than the window, then count what is left.
    check(r.zadd("w", {"t1": 100, "t2": 150, "t3": 200, "t4": 250}), 4)
    check(r.zremrangebyscore("w", "-inf", "(150"), 1)
    check(r.zcount("w", 150, "+inf"), 3)
    check(r.zremrangebyrank("w", 0, -2), 2)
    check(r.zrange("w", 0, -1, withscores=True), [(b"t4", 250.0)])
    # Leaderboards merged: weights, aggregates, sets as sources.
    check(r.zadd("week1", {"ann": 10, "bob": 20}), 2)
    check(r.zadd("week2", {"bob": 5, "cy": 7}), 2)
    check(r.sadd("bonus", "cy"), 1)
    check(r.zunionstore("total", {"week1": 2, "week2": 1}), 3)
    check(r.zrange("total", 0, -1, withscores=True), [(b"cy", 7.0), (b"ann", 20.0), (b"bob", 45.0)])
    check(r.zinter(["week1", "week2"], aggregate="MAX", withscores=True), [(b"bob", 20.0)])
    check(r.zunion(["week2", "bonus"], withscores=True), [(b"bob", 5.0), (b"cy", 8.0)])
    check(r.zdiff(["week1", "week2"]), [b"ann"])
    check(r.zinterstore("both", ["week1", "week2"], aggregate="MIN"), 1)
    check(r.zscore("both", "bob"), 5.0)
    # Autocomplete: one score, ranges by prefix.
    check(r.zadd("names", {"alice": 0, "alfred": 0, "bob": 0, "alvin": 0}), 4)
    check(r.zrangebylex("names", "[al", "(am"), [b"alfred", b"alice", b"alvin"])
    check(r.zrevrangebylex("names", "+", "[b", start=0, num=1), [b"bob"])
    check(r.zlexcount("names", "-", "+"), 4)
    check(r.zrange("names", "[alf", "[alice", bylex=True), [b"alfred", b"alice"])
    check(r.zremrangebylex("names", "[a", "(b"), 3)
    check(r.zrange("names", 0, -1), [b"bob"])
    check(r.zrangestore("top2", "total", 0, 1, desc=True), 2)
    check(r.zrange("top2", 0, -1), [b"ann", b"bob"])
    check(r.zintercard(2, ["week1", "week2"]), 1)
    check(r.sadd("tags1", "x", "y", "z"), 3)
    check(r.sadd("tags2", "y", "z"), 2)
    check(r.sintercard(2, ["tags1", "tags2"], limit=1), 1)
    check(r.zrandmember("top2") in (b"ann", b"bob"), True)
    check(sorted(r.zrandmember("top2", 5)), [b"ann", b"bob"])
    check(len(r.zrandmember("top2", -5)), 5)
    check(r.hset("one", "f", "v"), 1)
    check(r.hrandfield("one"), b"f")
    check(r.hrandfield("one", -2), [b"f", b"f"])


def transactions(r):
    pipe = r.pipeline()
    pipe.set("t", "1").incr("t").get("t").lpush("tl", "x")
    check(pipe.execute(), [True, 2, b"2", 1])
    plain = r.pipeline(transaction=False)
    for index in range(100):
        plain.incr("counter")
    check(plain.execute()[-1], 100)

    def add_one(pipe):
        value = int(pipe.get("t"))
        pipe.multi()
        pipe.set("t", value + 1)

    check(r.transaction(add_one, "t"), [True])
    check(r.get("t"), b"3")
    # A watched key changed by another client: the EXEC is refused.
    pipe = r.pipeline()
    pipe.watch("t")
    r.set("t", "other")
    pipe.multi()
    pipe.set("t", "mine")
    raises(redis.WatchError, pipe.execute)
    check(r.get("t"), b"other")
    pipe.reset()
    # A queued error aborts the whole transaction, as in Redis.
    pipe = r.pipeline()
    pipe.set("t", "x")
    pipe.execute_command("NOSUCH")
    raises(redis.ResponseError, pipe.execute)
    check(r.get("t"), b"other")


def server(r):
    check(r.client_setname("py"), True)
    check(r.client_getname(), "py")
    check(isinstance(r.client_id(), int), True)
    check(any(client["name"] == "py" for client in r.client_list()), True)
    check(r.client_info()["name"], "py")
    info = r.info()
    check(info["redis_version"], "7.0.15")
    check(info["connected_clients"] >= 1, True)
    # The fields monitoring tools read, with the types redis-py parses
    # them to (the values differ between servers).
    check(len(info["run_id"]), 40)
    check(info["multiplexing_api"] in ("io_uring", "epoll"), True)
    check(info["role"], "master")
    for name in ("total_commands_processed", "total_net_input_bytes", "total_net_output_bytes",
                 "instantaneous_ops_per_sec", "total_error_replies", "uptime_in_seconds"):
        check(isinstance(info[name], int), True)
    for name in ("used_cpu_sys", "used_cpu_user", "instantaneous_input_kbps"):
        check(isinstance(info[name], float), True)
    memory = r.info("memory")
    check(memory["used_memory"] > 0, True)
    check(memory["used_memory_rss"] > 0, True)
    check(memory["used_memory_peak"] >= memory["used_memory"], True)
    check(memory["used_memory_human"][-1] in "BKMG", True)
    check(isinstance(memory["mem_allocator"], str), True)
    check(memory["maxmemory_policy"], "noeviction")
    check("used_memory" not in r.info("cpu"), True)
    r.set("k", "v")
    r.set("t", "v", ex=100)
    keyspace = r.info("keyspace")["db0"]
    check((keyspace["keys"], keyspace["expires"]), (2, 1))
    check(0 <= keyspace["avg_ttl"] <= 100_000, True)
    before = r.info("stats")["total_commands_processed"]
    r.ping()
    check(r.info("stats")["total_commands_processed"] > before, True)
    seconds, micros = r.time()
    check(seconds > 1_600_000_000 and 0 <= micros < 1_000_000, True)
    check(r.config_get("appendonly"), {"appendonly": "yes"})
    check(r.config_get("maxc*"), {"maxclients": "10000"})
    check(r.command_count() > 100, True)
    commands = r.command()
    check(commands["get"]["arity"], 2)
    check(commands["zadd"]["arity"], -4)
    check(r.echo("hi"), b"hi")
    check(r.flushall(), True)
    check(r.dbsize(), 0)


def run(r, label):
    groups = (strings_and_keys, expiry, hashes, lists, blocking, sets, zsets, transactions, server)
    for group in groups:
        r.flushall()
        group(r)
    print(f"{label}: ok")


def main():
    port = int(sys.argv[1])
    default = redis.Redis(host="127.0.0.1", port=port)
    # The default protocol of redis-py 8 is RESP3, negotiated with HELLO 3.
    check(default.connection_pool.get_connection().get_protocol() in (3, "3"), True)
    run(default, "default settings (RESP3)")
    run(redis.Redis(host="127.0.0.1", port=port, protocol=2), "protocol=2")
    decoded = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    check(decoded.set("k", "é"), True)
    check(decoded.get("k"), "é")
    if len(sys.argv) > 3:
        password_port, password = int(sys.argv[2]), sys.argv[3]
        locked = redis.Redis(host="127.0.0.1", port=password_port)
        raises(redis.AuthenticationError, locked.ping)
        raises(redis.AuthenticationError, redis.Redis(host="127.0.0.1", port=password_port, password="wrong").ping)
        for protocol in (2, 3):
            r = redis.Redis(host="127.0.0.1", port=password_port, password=password, protocol=protocol)
            check(r.ping(), True)
            check(r.set("k", "v"), True)
        print("password: ok")
    print(f"redis-py {redis.__version__}: {checks} checks passed")


main()
