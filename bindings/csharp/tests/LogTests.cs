// WsLog: the native library's log records as an event and in System.Diagnostics.Trace.
using System;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Linq;
using System.Threading.Tasks;
using WsNative;
using Xunit;

namespace WsNative.Tests
{
    public class LogTests
    {
        private sealed class Keep : TraceListener
        {
            public readonly ConcurrentQueue<string> Lines = new ConcurrentQueue<string>();
            public override void Write(string message) { }
            public override void WriteLine(string message) => Lines.Enqueue(message);
            public override void TraceEvent(TraceEventCache c, string source, TraceEventType type, int id, string message) =>
                Lines.Enqueue(type + ": " + message);
        }

        private static async Task Refused()
        {
            var so = new WsServerOptions();
            so.AllowedOrigins.Add("https://good.example");
            using (var server = WsServer.Listen("127.0.0.1", 0, c => { }, so))
            {
                var ex = await Assert.ThrowsAsync<WsException>(() =>
                    T.Within(WsClient.ConnectAsync(T.Url(server), new WsClientOptions { Origin = "https://evil.example" }), 20, "refusal"));
                Assert.Equal(403, ex.HttpStatus);
            }
        }

        // Sorted first among these tests: nothing has enabled the log in this process yet.
        [Fact]
        public async Task A_OffByDefault_AndAboveTheLevel_NoRecords()
        {
            var got = new ConcurrentQueue<WsLogRecord>();
            EventHandler<WsLogRecord> h = (s, r) => got.Enqueue(r);
            WsLog.Record += h;
            try
            {
                await Refused();
                await Task.Delay(200);
                Assert.Equal(0, got.Count);
                WsLog.Enable(WsLogLevel.Warning); // a refusal is Info
                await Refused();
                await Task.Delay(200);
                Assert.Equal(0, got.Count);
                WsLog.Enable(WsLogLevel.Info);
                WsLog.Disable();
                await Refused();
                await Task.Delay(200);
                Assert.Equal(0, got.Count);
            }
            finally { WsLog.Record -= h; WsLog.Disable(); }
        }

        [Fact]
        public async Task B_RefusedHandshake_IsLoggedWithItsReason_InTheEventAndTrace()
        {
            var got = new ConcurrentQueue<WsLogRecord>();
            EventHandler<WsLogRecord> h = (s, r) => got.Enqueue(r);
            var keep = new Keep();
            Trace.Listeners.Add(keep);
            WsLog.Record += h;
            try
            {
                WsLog.Enable(WsLogLevel.Info);
                await Refused();
                T.Wait(() => got.Any(r => r.Target == "wsnative::server" && r.Message.Contains("origin not allowed")), 20, "the server's record");
                T.Wait(() => got.Any(r => r.Target == "wsnative::client" && r.Message.Contains("403")), 20, "the client's record");
                var srv = got.First(r => r.Target == "wsnative::server");
                Assert.Equal(WsLogLevel.Info, srv.Level);
                Assert.True(srv.Message.Contains("403"), srv.Message);
                Assert.True(got.First(r => r.Target == "wsnative::client").ConnectionId != 0, "client record's connection id");
                T.Wait(() => keep.Lines.Any(l => l.Contains("wsnative: Info wsnative::server") && l.Contains("origin not allowed")), 20, "the Trace line");
            }
            finally { WsLog.Record -= h; WsLog.Disable(); Trace.Listeners.Remove(keep); }
        }

        [Fact]
        public async Task C_Records_CarryTheConnectionId()
        {
            var got = new ConcurrentQueue<WsLogRecord>();
            EventHandler<WsLogRecord> h = (s, r) => got.Enqueue(r);
            WsLog.Record += h;
            try
            {
                WsLog.Enable(WsLogLevel.Debug);
                using (var echo = new EchoServer())
                {
                    var c = await T.Within(WsClient.ConnectAsync(T.Url(echo.Server)), 20, "connect");
                    Assert.True(c.Id != 0, "connection id");
                    await T.Within(c.CloseAsync(1000, "done"), 20, "close");
                    T.Wait(() => got.Any(r => r.ConnectionId == c.Id && r.Message.Contains("closed cleanly with 1000")), 20, "the close record");
                    c.Dispose();
                }
            }
            finally { WsLog.Record -= h; WsLog.Disable(); }
        }
    }
}
