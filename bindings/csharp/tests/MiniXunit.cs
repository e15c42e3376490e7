// A tiny xunit-shaped runner (Debian has no .NET SDK, NuGet or xunit package, so the tests carry
// their own, and the same files still build with real xunit): [Fact] on static or instance
// methods returning void or Task, a new instance per test (Dispose afterwards), sorted by name,
// optional name filters as arguments, a per-test timeout (env TEST_TIMEOUT_S, default 120),
// Skip. Ends with "N passed, M failed[, K skipped]"; exit 1 on a failure or when no test ran.
// With real xunit this file is left out.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Reflection;
using System.Threading;
using System.Threading.Tasks;

namespace Xunit
{
    [AttributeUsage(AttributeTargets.Method)]
    public sealed class FactAttribute : Attribute
    {
        public string Skip { get; set; }
    }

    public sealed class AssertException : Exception
    {
        public AssertException(string message) : base(message) { }
    }

    public static class Assert
    {
        public static void True(bool condition, string message = null)
        {
            if (!condition) throw new AssertException(message ?? "expected true");
        }

        public static void False(bool condition, string message = null)
        {
            if (condition) throw new AssertException(message ?? "expected false");
        }

        public static void Equal<T>(T expected, T actual)
        {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
                throw new AssertException("expected: " + Show(expected) + "\nactual:   " + Show(actual));
        }

        public static void NotEqual<T>(T expected, T actual)
        {
            if (EqualityComparer<T>.Default.Equals(expected, actual))
                throw new AssertException("expected anything but: " + Show(expected));
        }

        public static void Null(object o)
        {
            if (o != null) throw new AssertException("expected null, got " + Show(o));
        }

        public static void NotNull(object o)
        {
            if (o == null) throw new AssertException("expected non-null");
        }

        public static void Same(object expected, object actual)
        {
            if (!ReferenceEquals(expected, actual)) throw new AssertException("expected the same object");
        }

        public static T Throws<T>(Action action) where T : Exception
        {
            try { action(); }
            catch (Exception e)
            {
                if (e.GetType() == typeof(T)) return (T)e;
                throw new AssertException("expected " + typeof(T).Name + ", got " + e.GetType().Name + ": " + e.Message);
            }
            throw new AssertException("expected " + typeof(T).Name + ", nothing was thrown");
        }

        public static async Task<T> ThrowsAsync<T>(Func<Task> action) where T : Exception
        {
            try { await action(); }
            catch (Exception e)
            {
                if (e.GetType() == typeof(T)) return (T)e;
                throw new AssertException("expected " + typeof(T).Name + ", got " + e.GetType().Name + ": " + e.Message);
            }
            throw new AssertException("expected " + typeof(T).Name + ", nothing was thrown");
        }

        private static string Show(object o) => o == null ? "(null)" : o is string ? "\"" + o + "\"" : o.ToString();
    }

    public static class MiniRunner
    {
        public static int Main(string[] args)
        {
            var timeoutS = 120;
            int t;
            if (int.TryParse(Environment.GetEnvironmentVariable("TEST_TIMEOUT_S"), out t) && t > 0) timeoutS = t;
            var tests = Assembly.GetExecutingAssembly().GetTypes()
                .SelectMany(ty => ty.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly))
                .Where(m => m.GetCustomAttributes(typeof(FactAttribute), false).Length > 0)
                .Select(m => new { Method = m, Name = m.DeclaringType.Name + "." + m.Name })
                .Where(x => args.Length == 0 || args.Any(a => x.Name.IndexOf(a, StringComparison.OrdinalIgnoreCase) >= 0))
                .OrderBy(x => x.Name, StringComparer.Ordinal)
                .ToList();
            int passed = 0, failed = 0, skipped = 0;
            foreach (var test in tests)
            {
                var fact = (FactAttribute)test.Method.GetCustomAttributes(typeof(FactAttribute), false)[0];
                if (fact.Skip != null)
                {
                    skipped++;
                    Console.WriteLine("SKIP " + test.Name + ": " + fact.Skip);
                    continue;
                }
                Exception error = null;
                var sw = Stopwatch.StartNew();
                var thread = new Thread(() =>
                {
                    object instance = null;
                    try
                    {
                        if (!test.Method.IsStatic) instance = Activator.CreateInstance(test.Method.DeclaringType);
                        var result = test.Method.Invoke(instance, null);
                        var task = result as Task;
                        if (task != null) task.GetAwaiter().GetResult();
                    }
                    catch (TargetInvocationException e) { error = e.InnerException; }
                    catch (Exception e) { error = e; }
                    finally
                    {
                        var d = instance as IDisposable;
                        if (d != null)
                        {
                            try { d.Dispose(); }
                            catch (Exception e) { if (error == null) error = e; }
                        }
                    }
                });
                thread.IsBackground = true;
                thread.Start();
                if (!thread.Join(TimeSpan.FromSeconds(timeoutS)))
                    error = new TimeoutException("test did not finish within " + timeoutS + " s");
                if (error == null)
                {
                    passed++;
                    Console.WriteLine("PASS " + test.Name + " (" + sw.ElapsedMilliseconds + " ms)");
                }
                else
                {
                    failed++;
                    Console.WriteLine("FAIL " + test.Name + " (" + sw.ElapsedMilliseconds + " ms): " + error);
                }
            }
            Console.WriteLine(passed + " passed, " + failed + " failed" + (skipped > 0 ? ", " + skipped + " skipped" : ""));
            Console.Out.Flush();
            var code = failed > 0 || passed == 0 ? 1 : 0;
            Environment.Exit(code); // do not wait for a hung test's thread
            return code;
        }
    }
}
