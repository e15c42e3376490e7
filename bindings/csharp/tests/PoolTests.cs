// client-reach (issue 13): the connection pool through the C# binding.
using System;
using System.Threading.Tasks;
using WsNative;
using Xunit;

namespace WsNative.Tests
{
    public class PoolTests
    {
        [Fact]
        public async Task Pool_HandsOutOpenConnections_AndRefills()
        {
            using (var server = new EchoServer())
            using (var pool = new WsPool(server.Url, 2))
            {
                T.Wait(() => pool.Ready == 2, 20, "the pool filled");
                using (var c = pool.TryTake())
                {
                    Assert.NotNull(c);
                    Assert.Equal(WsState.Open, c.State);
                    c.Send("pooled");
                    var m = await T.Within(c.ReceiveAsync(), 20, "echo");
                    Assert.Equal("pooled", m.Text);
                }
                T.Wait(() => pool.Ready == 2, 20, "the pool refilled");
            }
            using (var empty = new WsPool(new Uri("ws://127.0.0.1:9/"), 1))
                Assert.Null(empty.TryTake());
        }
    }
}
