-- wrk script shared by every HTTP row: POST a 2-byte JSON body, so the
-- ceiling, the fork-per-request peer and mayfly all do the same work on
-- the wire (mayfly's invoke route takes the event as the request body).
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
