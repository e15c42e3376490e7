// Echo client: connects to the URL given as the first argument (default ws://127.0.0.1:9001/),
// sends each line of stdin, prints what comes back ("< ..."), then closes cleanly.
//
//   mcs -langversion:7.2 -r:WsNative.dll EchoClient.cs && echo hi | mono EchoClient.exe ws://127.0.0.1:9001/
using System;
using System.Threading;
using System.Threading.Tasks;
using WsNative;

static class EchoClient
{
    static int Main(string[] args) => Run(args).GetAwaiter().GetResult();

    static async Task<int> Run(string[] args)
    {
        var url = new Uri(args.Length > 0 ? args[0] : "ws://127.0.0.1:9001/");
        WsConnection conn;
        try
        {
            using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15)))
                conn = await WsClient.ConnectAsync(url, new WsClientOptions(), cts.Token);
        }
        catch (WsException e)
        {
            Console.Error.WriteLine("connect failed (" + e.Error + "): " + e.Message);
            return 1;
        }
        using (conn)
        {
            string line;
            while ((line = Console.ReadLine()) != null)
            {
                conn.Send(line);
                // pull style: no MessageReceived handler, so messages wait for ReceiveAsync
                using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
                {
                    var reply = await conn.ReceiveAsync(cts.Token);
                    if (reply.Type == WsMessageType.Close)
                    {
                        Console.WriteLine("closed by the server: " + reply.Close);
                        return 1;
                    }
                    Console.WriteLine("< " + reply.Text);
                }
            }
            await conn.CloseAsync(1000, "bye"); // bounded by the close timeout
            Console.WriteLine("closed: " + conn.CloseInfo);
            return conn.CloseInfo.WasClean ? 0 : 1;
        }
    }
}
