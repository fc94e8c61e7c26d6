package io.mayfly.runtime;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

/**
 * The Lambda Runtime API over one persistent HTTP/1.1 connection: the
 * platform answers on 127.0.0.1 inside the sandbox, so a small client of
 * its own costs less at start than java.net.http (whose classes alone take
 * tens of milliseconds to load) and keeps one connection for every call.
 */
final class RuntimeApi {
    static final String PREFIX = "/2018-06-01/runtime";

    /** A response: its status, its headers (names in lower case), its body. */
    static final class Response {
        final int status;
        final Map<String, String> headers;
        final byte[] body;

        Response(int status, Map<String, String> headers, byte[] body) {
            this.status = status;
            this.headers = headers;
            this.body = body;
        }

        String header(String name) {
            return headers.get(name);
        }
    }

    private final String host;
    private final int port;
    private final byte[] hostHeader;
    private Socket socket;
    private InputStream in;
    private OutputStream out;

    RuntimeApi(String address) throws IOException {
        int colon = address.lastIndexOf(':');
        if (colon < 0)
            throw new IOException("AWS_LAMBDA_RUNTIME_API must be HOST:PORT, not `" + address + "`");
        this.host = address.substring(0, colon);
        try {
            this.port = Integer.parseInt(address.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw new IOException("AWS_LAMBDA_RUNTIME_API must be HOST:PORT, not `" + address + "`");
        }
        this.hostHeader = ("Host: " + address + "\r\n").getBytes(StandardCharsets.US_ASCII);
        connect();
    }

    private void connect() throws IOException {
        close();
        Socket s = new Socket();
        s.setTcpNoDelay(true);
        s.connect(new InetSocketAddress(host, port));
        socket = s;
        in = new BufferedInputStream(s.getInputStream(), 16384);
        out = s.getOutputStream();
    }

    void close() {
        if (socket != null) {
            try {
                socket.close();
            } catch (IOException ignored) {
                // Nothing more to say to a platform that has gone.
            }
            socket = null;
        }
    }

    /** GET …/invocation/next: blocks until the platform has an event. */
    Response next() throws IOException {
        return request("GET", PREFIX + "/invocation/next", null, null);
    }

    Response post(String path, byte[] body, String extraHeaders) throws IOException {
        return request("POST", path, body, extraHeaders);
    }

    private Response request(String method, String path, byte[] body, String extraHeaders)
            throws IOException {
        StringBuilder head = new StringBuilder(160);
        head.append(method).append(' ').append(path).append(" HTTP/1.1\r\n");
        ByteArrayOutputStream req = new ByteArrayOutputStream(256 + (body == null ? 0 : body.length));
        req.write(head.toString().getBytes(StandardCharsets.US_ASCII));
        req.write(hostHeader);
        StringBuilder rest = new StringBuilder(64);
        if (extraHeaders != null)
            rest.append(extraHeaders);
        if (body != null)
            rest.append("Content-Type: application/json\r\nContent-Length: ")
                    .append(body.length).append("\r\n");
        rest.append("\r\n");
        req.write(rest.toString().getBytes(StandardCharsets.US_ASCII));
        if (body != null)
            req.write(body);
        out.write(req.toByteArray());
        out.flush();
        return readResponse();
    }

    private String readLine() throws IOException {
        StringBuilder sb = new StringBuilder(64);
        for (;;) {
            int c = in.read();
            if (c < 0)
                throw new IOException("the Runtime API closed the connection");
            if (c == '\n')
                break;
            if (c != '\r')
                sb.append((char) c);
            if (sb.length() > 65536)
                throw new IOException("the Runtime API sent a header line past 64 KiB");
        }
        return sb.toString();
    }

    private Response readResponse() throws IOException {
        String status = readLine();
        if (!status.startsWith("HTTP/1.") || status.length() < 12)
            throw new IOException("the Runtime API answered `" + status + "`");
        int code;
        try {
            code = Integer.parseInt(status.substring(9, 12));
        } catch (NumberFormatException e) {
            throw new IOException("the Runtime API answered `" + status + "`");
        }
        Map<String, String> headers = new HashMap<>();
        for (;;) {
            String line = readLine();
            if (line.isEmpty())
                break;
            int colon = line.indexOf(':');
            if (colon <= 0)
                continue;
            headers.put(line.substring(0, colon).trim().toLowerCase(java.util.Locale.ROOT),
                    line.substring(colon + 1).trim());
        }
        byte[] body;
        String te = headers.get("transfer-encoding");
        String cl = headers.get("content-length");
        if (te != null && te.equalsIgnoreCase("chunked")) {
            body = readChunked();
        } else if (cl != null) {
            int n;
            try {
                n = Integer.parseInt(cl);
            } catch (NumberFormatException e) {
                throw new IOException("the Runtime API sent Content-Length `" + cl + "`");
            }
            body = in.readNBytes(n);
            if (body.length != n)
                throw new IOException("the Runtime API closed the connection in a body");
        } else {
            body = new byte[0];
        }
        String conn = headers.get("connection");
        if (conn != null && conn.equalsIgnoreCase("close"))
            connect();
        return new Response(code, headers, body);
    }

    private byte[] readChunked() throws IOException {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        for (;;) {
            String size = readLine();
            int semi = size.indexOf(';');
            if (semi >= 0)
                size = size.substring(0, semi);
            int n;
            try {
                n = Integer.parseInt(size.trim(), 16);
            } catch (NumberFormatException e) {
                throw new IOException("the Runtime API sent a chunk size `" + size + "`");
            }
            if (n == 0) {
                while (!readLine().isEmpty()) {
                    // trailers: none the runtime needs
                }
                return body.toByteArray();
            }
            byte[] chunk = in.readNBytes(n);
            if (chunk.length != n)
                throw new IOException("the Runtime API closed the connection in a chunk");
            body.write(chunk);
            readLine();
        }
    }
}
