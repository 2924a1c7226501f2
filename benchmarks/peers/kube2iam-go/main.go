// A kube2iam-equivalent peer for the benchmarks: kube2iam's request path for credential
// requests, rebuilt with the libraries kube2iam uses (gorilla/mux, logrus, the Prometheus
// client), from Debian's packages, because kube2iam itself cannot be built here (its
// go.mod needs a newer Go and modules that cannot be downloaded).
//
// Reproduced, per request, as kube2iam's server/server.go does it:
//   - gorilla/mux routes registered in kube2iam's order, {version} and {role:.*} vars;
//   - the appHandler wrapper: a status-capturing ResponseWriter, a logrus Info line with
//     kube2iam's fields and message, and an observation in the
//     kube2iam_http_request_duration_seconds histogram (labels code, method, handler,
//     kube2iam's buckets);
//   - the remote address parsed with net.SplitHostPort and net.ParseIP;
//   - the pod looked up by IP twice (role, then external ID), as roleHandler does;
//   - the role ARN built from the path and compared with the pod's;
//   - credentials from a cache keyed by role ARN (a mutex-guarded map standing in for
//     ccache) and written with encoding/json's Encoder, with the Server: EC2ws header.
// Left out: the Kubernetes informer (an in-memory IP-to-pod map stands in for its
// indexer), STS (the cache is filled at start), the back-off object kube2iam allocates
// per lookup (its first attempt succeeds). Other paths go to -metadata through
// httputil's reverse proxy, as kube2iam's reverseProxyHandler; without it they get 502.
//
//   kube2iam-go-peer -ip 127.0.0.1[,IP...] -role arn:aws:iam::123456789012:role/bench-role -token-length N
//                    [-host 127.0.0.1] [-metadata 169.254.169.254:80] -port PORT
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	log "github.com/sirupsen/logrus"
)

type credentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	Code            string
	Expiration      string
	LastUpdated     string
	SecretAccessKey string
	Token           string
	Type            string
}

type pod struct {
	role       string
	namespace  string
	externalID string
}

type server struct {
	baseARN string
	mu      sync.RWMutex
	pods    map[string]*pod
	cacheMu sync.Mutex
	cache   map[string]*credentials
}

var requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Namespace: "kube2iam",
	Subsystem: "http",
	Name:      "request_duration_seconds",
	Help:      "Time taken to serve HTTP requests.",
	Buckets:   prometheus.ExponentialBuckets(0.001, 2, 14),
}, []string{"code", "method", "handler"})

type responseWriter struct {
	http.ResponseWriter
	status int
}

func (rw *responseWriter) WriteHeader(code int) {
	rw.status = code
	rw.ResponseWriter.WriteHeader(code)
}

type appHandler struct {
	name string
	fn   func(http.ResponseWriter, *http.Request)
}

func (h appHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w, status: http.StatusOK}
	h.fn(rw, r)
	latency := time.Since(start)
	requestDuration.WithLabelValues(strconv.Itoa(rw.status), r.Method, h.name).Observe(latency.Seconds())
	if r.URL.Path != "/healthz" {
		ms := float64(latency.Nanoseconds()) / 1e6
		log.WithFields(log.Fields{
			"req.method": r.Method, "req.path": r.URL.Path, "req.remote": parseRemoteAddr(r.RemoteAddr),
			"res.duration": ms, "res.status": rw.status,
		}).Infof("%s %s (%d) took %f ms", r.Method, r.URL.Path, rw.status, ms)
	}
}

func parseRemoteAddr(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return ""
	}
	return ip.String()
}

func (s *server) podByIP(ip string) (*pod, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.pods[ip]
	if !ok {
		return nil, fmt.Errorf("pod with specificed IP %q not found", ip)
	}
	return p, nil
}

func (s *server) roleARN(role string) string {
	if strings.HasPrefix(strings.ToLower(role), "arn:") {
		return role
	}
	return s.baseARN + role
}

func (s *server) assumeRole(arn string) (*credentials, error) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	c, ok := s.cache[arn]
	if !ok {
		return nil, fmt.Errorf("no credentials for %s", arn)
	}
	return c, nil
}

func (s *server) securityCredentialsHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Server", "EC2ws")
	p, err := s.podByIP(parseRemoteAddr(r.RemoteAddr))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	io.WriteString(w, strings.TrimPrefix(s.roleARN(p.role), s.baseARN))
}

func (s *server) roleHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Server", "EC2ws")
	ip := parseRemoteAddr(r.RemoteAddr)
	p, err := s.podByIP(ip)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if _, err := s.podByIP(ip); err != nil { // the external-ID lookup
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	wanted := s.roleARN(mux.Vars(r)["role"])
	if wanted != s.roleARN(p.role) {
		http.Error(w, fmt.Sprintf("Invalid role %s", mux.Vars(r)["role"]), http.StatusForbidden)
		return
	}
	creds, err := s.assumeRole(wanted)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := json.NewEncoder(w).Encode(creds); err != nil {
		log.Errorf("Error sending json %+v", err)
	}
}

func main() {
	port := flag.Int("port", 8181, "listen port")
	ip := flag.String("ip", "127.0.0.1", "the pod IPs, comma-separated (one role for all)")
	host := flag.String("host", "127.0.0.1", "listen address")
	metadata := flag.String("metadata", "", "the metadata service for other paths (host:port)")
	role := flag.String("role", "arn:aws:iam::123456789012:role/bench-role", "the pod's role ARN")
	tokenLength := flag.Int("token-length", 800, "length of the session token served")
	flag.Parse()
	log.SetOutput(os.Stderr)
	prometheus.MustRegister(requestDuration)

	now := time.Now().UTC()
	s := &server{
		baseARN: "arn:aws:iam::123456789012:role/",
		pods:    map[string]*pod{},
		cache: map[string]*credentials{*role: {
			AccessKeyID: "ASIABENCHBENCHBENCH1", Code: "Success", Type: "AWS-HMAC",
			Expiration: now.Add(30 * time.Minute).Format("2006-01-02T15:04:05Z"), LastUpdated: now.Format("2006-01-02T15:04:05Z"),
			SecretAccessKey: strings.Repeat("s", 40), Token: strings.Repeat("t", *tokenLength),
		}},
	}
	for _, podIP := range strings.Split(*ip, ",") {
		s.pods[podIP] = &pod{role: *role, namespace: "bench"}
	}
	passThrough := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }
	if *metadata != "" {
		proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: *metadata})
		passThrough = proxy.ServeHTTP
	}
	r := mux.NewRouter()
	r.Handle("/{version}/meta-data/iam/security-credentials", appHandler{"securityCredentialsHandler", s.securityCredentialsHandler})
	r.Handle("/{version}/meta-data/iam/security-credentials/", appHandler{"securityCredentialsHandler", s.securityCredentialsHandler})
	r.Handle("/{version}/meta-data/iam/security-credentials/{role:.*}", appHandler{"roleHandler", s.roleHandler})
	r.Handle("/healthz", appHandler{"healthHandler", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "{}") }})
	r.Handle("/{path:.*}", appHandler{"reverseProxyHandler", passThrough})

	listener, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		log.Fatalf("%s", err)
	}
	fmt.Println("ready")
	log.Fatalf("%s", http.Serve(listener, r))
}
