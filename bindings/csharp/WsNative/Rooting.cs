// Handle and callback management: native code reaches managed objects only through weak
// GCHandles, so an object something waits on (a task, an open server connection) is rooted here
// for as long as that lasts, and collected once nothing does.
using System.Collections.Generic;

namespace WsNative.Native
{
    /// <summary>A count of reasons to keep one object alive; rooted while the count is above 0.</summary>
    internal sealed class Roots
    {
        private static readonly HashSet<object> s_rooted = new HashSet<object>();

        private readonly object _owner;
        private int _count; // under s_rooted's lock

        internal Roots(object owner) { _owner = owner; }

        internal void Add()
        {
            lock (s_rooted) if (_count++ == 0) s_rooted.Add(_owner);
        }

        internal void Remove()
        {
            lock (s_rooted) if (_count > 0 && --_count == 0) s_rooted.Remove(_owner);
        }

        /// <summary>Every reason is gone (the connection ended or was disposed).</summary>
        internal void Clear()
        {
            lock (s_rooted)
            {
                if (_count == 0) return;
                _count = 0;
                s_rooted.Remove(_owner);
            }
        }
    }
}
