// client-reach (issue 13): the handshake response through the C# binding: the 101's status and
// headers on the open connection, a refusal's on the WsException (wsnative's own server).
using System;
using System.Collections.Generic;
using System.Threading.Tasks;
using WsNative;
using Xunit;

namespace WsNative.Tests
{
    public class ResponseTests
    {
        [Fact]
        public async Task HandshakeResponse_OfThe101_AndOfARefusal_AreReadable()
        {
            string cookieSeen = null, authSeen = null;
            using (var server = WsServer.Listen("127.0.0.1", 0, c => { }, null, r =>
            {
                cookieSeen = r.GetHeader("Cookie");
                authSeen = r.GetHeader("Authorization");
                if (r.Path == "/private") r.Reject(401, "log in first");
            }))
            {
                var o = new WsClientOptions();
                // Cookies and Authorization go out as extra request headers.
                o.Headers.Add(new KeyValuePair<string, string>("Cookie", "theme=dark"));
                o.Headers.Add(new KeyValuePair<string, string>("Authorization", "Bearer t0ken"));
                using (var c = await T.Within(WsClient.ConnectAsync(T.Url(server), o), 20, "connect"))
                {
                    Assert.NotNull(c.HandshakeResponse);
                    Assert.Equal(101, c.HandshakeResponse.StatusCode);
                    Assert.NotNull(c.HandshakeResponse.GetHeader("sec-websocket-accept"));
                }
                Assert.Equal("theme=dark", cookieSeen);
                Assert.Equal("Bearer t0ken", authSeen);
                try
                {
                    using (await T.Within(WsClient.ConnectAsync(T.Url(server, "/private"), o), 20, "connect")) { }
                    throw new Exception("the refused connection opened");
                }
                catch (WsException e)
                {
                    Assert.Equal(401, e.HttpStatus);
                    Assert.NotNull(e.Response);
                    Assert.Equal(401, e.Response.StatusCode);
                    Assert.True(e.Response.Headers.Count > 0, "no headers");
                }
            }
        }
    }
}
