// Public value types: errors, states, messages and event arguments.
using System;
using System.Text;

namespace WsNative
{
    /// <summary>wsn_status: why something failed.</summary>
    public enum WsError
    {
        None = 0,
        InvalidArgument = -1,
        InvalidState = -2,
        Dns = -3,
        Connect = -4,
        Tls = -5,
        Handshake = -6,
        Timeout = -7,
        Protocol = -8,
        Io = -9,
        Aborted = -10,
        Internal = -11,
        /// <summary>The send queue is full (WsClientOptions.MaxSendQueue): Send queued nothing; SendAsync waits instead.
        /// In a close: the connection was closed because its peer read too slowly (WsSendQueuePolicy.Close).</summary>
        WouldBlock = -12,
    }

    /// <summary>A failure reported by wsnative: its kind, its message and, for a refused upgrade, the HTTP status.</summary>
    public class WsException : Exception
    {
        public WsException(WsError error, string message, int httpStatus) : base(message)
        {
            Error = error;
            HttpStatus = httpStatus;
        }

        public WsError Error { get; }

        /// <summary>The HTTP status when the server refused the upgrade, else 0.</summary>
        public int HttpStatus { get; }

        /// <summary>client-reach (issue 13): the refusal's status and headers, when the server answered the upgrade.</summary>
        public WsHandshakeResponse Response { get; internal set; }
    }

    public enum WsState
    {
        Connecting = 0,
        Open = 1,
        Closing = 2,
        Closed = 3,
    }

    public enum WsMessageType
    {
        Text,
        Binary,
        /// <summary>Returned by ReceiveAsync once the connection has closed and every message was received.</summary>
        Close,
    }

    /// <summary>A whole message (or, from ReceiveAsync, the end of the connection).</summary>
    public sealed class WsMessage
    {
        private string _text;

        internal WsMessage(WsMessageType type, byte[] data, WsClosedEventArgs close)
        {
            Type = type;
            Data = data;
            Close = close;
        }

        public WsMessageType Type { get; }
        public bool IsText => Type == WsMessageType.Text;

        /// <summary>The payload (UTF-8 for text); empty for Close.</summary>
        public byte[] Data { get; }

        /// <summary>The payload decoded as UTF-8 (text messages are validated by wsnative).</summary>
        public string Text => _text ?? (_text = Encoding.UTF8.GetString(Data));

        /// <summary>For Type == Close: how the connection ended.</summary>
        public WsClosedEventArgs Close { get; }
    }

    public sealed class WsMessageEventArgs : EventArgs
    {
        internal WsMessageEventArgs(WsMessage m) { Message = m; }
        public WsMessage Message { get; }
        public bool IsText => Message.IsText;
        public byte[] Data => Message.Data;
        public string Text => Message.Text;
    }

    /// <summary>How a connection ended: exactly one per connection.</summary>
    public sealed class WsClosedEventArgs : EventArgs
    {
        internal WsClosedEventArgs(int code, string reason, bool wasClean, string error, WsError errorKind, int httpStatus)
        {
            Code = code;
            Reason = reason ?? "";
            WasClean = wasClean;
            Error = error;
            ErrorKind = errorKind;
            HttpStatus = httpStatus;
        }

        /// <summary>1000 normal, 1001 going away, 1005 no code, 1006 abnormal, 4000-4999 the application's, ...</summary>
        public int Code { get; }
        public string Reason { get; }
        /// <summary>Both Close frames were exchanged.</summary>
        public bool WasClean { get; }
        /// <summary>What went wrong, or null when nothing did.</summary>
        public string Error { get; }
        public WsError ErrorKind { get; }
        /// <summary>The HTTP status when the server refused the upgrade, else 0.</summary>
        public int HttpStatus { get; }

        /// <summary>client-reach (issue 13): the refusal's status and headers, when the server answered the upgrade.</summary>
        public WsHandshakeResponse Response { get; internal set; }

        internal WsException ToException() =>
            new WsException(ErrorKind == WsError.None ? WsError.Io : ErrorKind,
                            Error ?? ("connection closed with " + Code + (Reason.Length > 0 ? " " + Reason : "")), HttpStatus);

        public override string ToString() =>
            Code + (Reason.Length > 0 ? " '" + Reason + "'" : "") + (WasClean ? " clean" : " not clean") +
            (Error != null ? " (" + ErrorKind + ": " + Error + ")" : "");
    }

    /// <summary>An exception thrown by an application handler, or the error a connection ended with.</summary>
    public sealed class WsErrorEventArgs : EventArgs
    {
        internal WsErrorEventArgs(Exception e) { Exception = e; }
        public Exception Exception { get; }
    }

    public enum WsHeartbeat
    {
        /// <summary>Ping every interval; no Pong within the pong timeout ends the connection.</summary>
        Ping = 0,
        /// <summary>Unsolicited Pong every interval; never times out.</summary>
        Pong = 1,
    }

    /// <summary>What a server does with a new connection when a cap on handshakes in progress is reached.</summary>
    public enum WsPendingHandshakePolicy
    {
        /// <summary>Drop the oldest unfinished handshake (of that address, for the per-address cap): slow clients cannot lock out fast ones. The default.</summary>
        DropOldest = 0,
        /// <summary>Refuse the new connection with HTTP 503.</summary>
        Refuse = 1,
    }

    /// <summary>What a send does when the send queue is full.</summary>
    public enum WsSendQueuePolicy
    {
        /// <summary>Send throws a WsException (WsError.WouldBlock) and queues nothing; SendAsync waits for room.</summary>
        Refuse = 0,
        /// <summary>The connection is closed with 1008: a server's answer to a client that reads too slowly.</summary>
        Close = 1,
    }

    public enum WsTlsRoots
    {
        Bundled = 0,
        System = 1,
        None = 2,
    }
}
