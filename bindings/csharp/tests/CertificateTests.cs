// client-reach (issue 13): certificates through the C# binding. Mutual TLS with the subject in
// the accept handler, a pinning ServerCertificateCheck, TrustedFingerprints, and a quick
// `openssl req -x509` certificate given as a CA file. Certificates come from the openssl
// command line (test.sh installs it).
using System;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO;
using System.Threading.Tasks;
using WsNative;
using Xunit;

namespace WsNative.Tests
{
    public class CertificateTests
    {
        private static string TempDir()
        {
            var d = Path.Combine(Path.GetTempPath(), "wsn-cs-certs-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(d);
            return d;
        }

        private static void OpenSsl(string args)
        {
            var psi = new ProcessStartInfo("openssl", args)
            {
                UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true,
            };
            using (var p = Process.Start(psi))
            {
                var err = p.StandardError.ReadToEnd();
                if (!p.WaitForExit(60000)) throw new TimeoutException("openssl " + args);
                if (p.ExitCode != 0) throw new Exception("openssl " + args + ": " + err);
            }
        }

        /// <summary>The quick way: self-signed, CA:TRUE, CN=localhost only.</summary>
        private static void Quick(string dir, string name)
        {
            OpenSsl("req -x509 -newkey rsa:2048 -nodes -keyout " + Path.Combine(dir, name + ".key") + " -out "
                    + Path.Combine(dir, name + ".pem") + " -days 2 -subj /CN=localhost");
        }

        /// <summary>A leaf signed by the quick certificate `ca` (used as a CA).</summary>
        private static void Leaf(string dir, string ca, string name, string cn, string ext)
        {
            Func<string, string> P = f => Path.Combine(dir, f);
            File.WriteAllText(P(name + ".cnf"), ext + "\n");
            OpenSsl("req -newkey rsa:2048 -nodes -keyout " + P(name + ".key") + " -out " + P(name + ".csr") + " -subj /CN=" + cn);
            OpenSsl("x509 -req -in " + P(name + ".csr") + " -CA " + P(ca + ".pem") + " -CAkey " + P(ca + ".key")
                    + " -CAcreateserial -out " + P(name + ".pem") + " -days 2 -extfile " + P(name + ".cnf"));
        }

        private static async Task Echo(Uri url, WsClientOptions o, string text)
        {
            using (var c = await T.Within(WsClient.ConnectAsync(url, o), 20, "connect"))
            {
                c.Send(text);
                var m = await T.Within(c.ReceiveAsync(), 20, "echo");
                Assert.Equal(text, m.Text);
            }
        }

        private static async Task<WsException> Refused(Uri url, WsClientOptions o)
        {
            try
            {
                using (await T.Within(WsClient.ConnectAsync(url, o), 20, "connect")) { }
            }
            catch (WsException e)
            {
                Assert.Equal(WsError.Tls, e.Error);
                return e;
            }
            throw new Exception("the connection opened");
        }

        [Fact]
        public async Task MutualTls_RequiresAClientCertificate_AndTheAcceptHandlerSeesItsSubject()
        {
            var d = TempDir();
            Func<string, string> P = f => Path.Combine(d, f);
            Quick(d, "serverca");
            Quick(d, "clientca");
            Leaf(d, "serverca", "server", "localhost", "subjectAltName=DNS:localhost");
            Leaf(d, "clientca", "alice", "alice", "extendedKeyUsage=clientAuth");
            var subjects = new ConcurrentQueue<string>();
            var so = new WsServerOptions
            {
                TlsCertificatePemPath = P("server.pem"), TlsKeyPemPath = P("server.key"), ClientCaPemPath = P("clientca.pem"),
            };
            using (var server = new EchoServer(so))
            using (var hooked = WsServer.Listen("127.0.0.1", 0, c => { }, so, r => subjects.Enqueue(r.PeerCertificateSubject)))
            {
                var url = new Uri("wss://localhost:" + server.Server.Port + "/");
                var o = new WsClientOptions();
                o.CaFiles.Add(P("serverca.pem"));
                var e = await Refused(url, o);
                Assert.True(e.Message != null && e.Message.Contains("requires a client certificate"), e.Message);

                o.ClientCertificatePemPath = P("alice.pem");
                o.ClientKeyPemPath = P("alice.key");
                await Echo(url, o, "mutual");

                var fromMemory = new WsClientOptions
                {
                    ClientCertificatePem = File.ReadAllText(P("alice.pem")), ClientKeyPem = File.ReadAllText(P("alice.key")),
                };
                fromMemory.CaFiles.Add(P("serverca.pem"));
                await Echo(url, fromMemory, "from memory");

                using (await T.Within(WsClient.ConnectAsync(new Uri("wss://localhost:" + hooked.Port + "/"), o), 20, "connect")) { }
                string subject;
                Assert.True(subjects.TryDequeue(out subject));
                Assert.True(subject != null && subject.Contains("CN=alice"), subject);
            }
            Directory.Delete(d, true);
        }

        [Fact]
        public async Task ServerCertificateCheck_PinsAFingerprint_AndTrustedFingerprintsPinWithoutACallback()
        {
            var d = TempDir();
            Func<string, string> P = f => Path.Combine(d, f);
            Quick(d, "pinned");
            Quick(d, "other");
            using (var pinned = new EchoServer(new WsServerOptions { TlsCertificatePemPath = P("pinned.pem"), TlsKeyPemPath = P("pinned.key") }))
            using (var other = new EchoServer(new WsServerOptions { TlsCertificatePemPath = P("other.pem"), TlsKeyPemPath = P("other.key") }))
            {
                var pinnedUrl = new Uri("wss://localhost:" + pinned.Server.Port + "/");
                var otherUrl = new Uri("wss://localhost:" + other.Server.Port + "/");
                string want = null;
                var seen = new ConcurrentQueue<WsCertificateCheck>();
                var learn = new WsClientOptions { ServerCertificateCheck = c => { want = c.Fingerprint; return true; } };
                await Echo(pinnedUrl, learn, "learn"); // a test may accept anything; an application must not
                Assert.NotNull(want);

                var o = new WsClientOptions { ServerCertificateCheck = c => { seen.Enqueue(c); return c.Fingerprint == want; } };
                await Echo(pinnedUrl, o, "pinned");
                var e = await Refused(otherUrl, o);
                Assert.True(e.Message != null && e.Message.Contains("certificate check refused"), e.Message);
                foreach (var c in seen)
                {
                    Assert.Equal("localhost", c.Host);
                    Assert.Equal(1, c.Chain.Count);
                    Assert.NotNull(c.DefaultError); // self-signed, not trusted by default
                }

                var byFingerprint = new WsClientOptions { TlsRoots = WsTlsRoots.None };
                byFingerprint.TrustedFingerprints.Add(want);
                await Echo(pinnedUrl, byFingerprint, "by fingerprint");
                await Refused(otherUrl, byFingerprint);

                var quickAsCa = new WsClientOptions();
                quickAsCa.CaFiles.Add(P("pinned.pem"));
                await Echo(pinnedUrl, quickAsCa, "quick certificate as CA file");
            }
            Directory.Delete(d, true);
        }
    }
}
