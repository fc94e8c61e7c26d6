-- wrk script of the async rows: the same POST of a 2-byte JSON body as
-- bench/post.lua, as an asynchronous invocation. mayfly answers 202
-- {"request_id"} once the event is in its queue and fsync'd (a group
-- commit); the event itself runs later, in the background.
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Mayfly-Invocation-Type"] = "Event"
