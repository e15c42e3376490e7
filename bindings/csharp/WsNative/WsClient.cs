using System;
using System.Threading;
using System.Threading.Tasks;

namespace WsNative
{
    public static class WsClient
    {
        /// <summary>
        /// Connects to a ws:// or wss:// URL. Fails with a WsException that says why (DNS, refused,
        /// TLS, the HTTP status of a refused upgrade, timeout). Cancelling aborts the attempt.
        /// </summary>
        public static Task<WsConnection> ConnectAsync(Uri uri, WsClientOptions options = null,
                                                      CancellationToken cancellationToken = default(CancellationToken))
            => ConnectAsync(uri, options, null, cancellationToken);

        /// <summary>
        /// As ConnectAsync; <paramref name="onOpen"/> runs on the callback thread when the connection
        /// opens, before any message is delivered: subscribe to events there to see every message.
        /// </summary>
        public static async Task<WsConnection> ConnectAsync(Uri uri, WsClientOptions options, Action<WsConnection> onOpen,
                                                            CancellationToken cancellationToken)
        {
            if (uri == null) throw new ArgumentNullException(nameof(uri));
            cancellationToken.ThrowIfCancellationRequested();
            var conn = new WsConnection(null, onOpen);
            conn.StartConnect(uri.AbsoluteUri, options);
            try
            {
                using (cancellationToken.Register(s => { var c = (WsConnection)s; if (!c.OpenTask.IsCompleted) c.Abort(); }, conn))
                    await conn.OpenTask.ConfigureAwait(false);
                if (cancellationToken.IsCancellationRequested && conn.State != WsState.Open)
                    throw new OperationCanceledException(cancellationToken);
            }
            catch (Exception e)
            {
                conn.Dispose();
                if (cancellationToken.IsCancellationRequested && !(e is OperationCanceledException))
                    throw new OperationCanceledException("the connect was cancelled", e, cancellationToken);
                throw;
            }
            return conn;
        }
    }
}
