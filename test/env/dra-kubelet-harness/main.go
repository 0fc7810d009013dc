// dra-kubelet-harness drives a DRA kubelet plugin the way kubelet 1.34 does, with kubelet's own
// code: the plugin manager (pkg/kubelet/pluginmanager) watches a plugins_registry directory and
// registers what it finds with the DRA manager (pkg/kubelet/cm/dra), which then prepares and
// unprepares a pod's ResourceClaims through the plugin's gRPC service. The CDI devices the plugin
// returns are resolved with the CDI library (tags.cncf.io/container-device-interface) against the
// spec files the plugin wrote, and injected into an empty OCI spec, as a container runtime would.
//
// It prints one JSON object per line on stdout:
//
//	{"event":"registered","driver":...,"endpoint":...,"versions":[...]}
//	{"event":"prepared","cdiDevices":[...],"oci":{"mounts":[...],"env":[...]}}   (or "prepareError")
//	{"event":"unprepared"}                                                       (or "unprepareError")
//	{"event":"health","resources":[{"name":...,"resourceID":...,"health":...}]}
//
// and waits for a line on stdin between prepare and unprepare ("unprepare", "prepare" again,
// "health", or "quit"), so a test can look at the node in between (or restart the plugin).
// The ResourceHealthStatus feature gate (alpha in 1.34) is on: the DRA manager reads the plugin's
// DRAResourceHealth stream, and "health" prints what kubelet would write into the pod's
// containerStatuses[].allocatedResourcesStatus. Built by test/env/build-dra-kubelet-harness.sh.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	oci "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/features"
	"k8s.io/kubernetes/pkg/kubelet/cm/dra"
	"k8s.io/kubernetes/pkg/kubelet/pluginmanager"
	"k8s.io/kubernetes/pkg/kubelet/pluginmanager/cache"
	"tags.cncf.io/container-device-interface/pkg/cdi"
)

// registration wraps the DRA manager's plugin handler to report when a plugin registered.
type registration struct {
	cache.PluginHandler
	mu   sync.Mutex
	done chan struct{}
	once sync.Once
}

func (r *registration) RegisterPlugin(name, endpoint string, versions []string, timeout *time.Duration) error {
	err := r.PluginHandler.RegisterPlugin(name, endpoint, versions, timeout)
	if err == nil {
		emit(map[string]any{"event": "registered", "driver": name, "endpoint": endpoint, "versions": versions})
		r.once.Do(func() { close(r.done) })
	} else {
		emit(map[string]any{"event": "registerError", "driver": name, "error": err.Error()})
	}
	return err
}

type ready struct{}

func (ready) AddSource(string) {}
func (ready) AllReady() bool   { return true }

var out = json.NewEncoder(os.Stdout)
var outMu sync.Mutex

func emit(v map[string]any) {
	outMu.Lock()
	defer outMu.Unlock()
	_ = out.Encode(v)
}

func fail(format string, args ...any) {
	emit(map[string]any{"event": "fatal", "error": fmt.Sprintf(format, args...)})
	os.Exit(1)
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the apiserver")
	registry := flag.String("plugins-registry", "", "kubelet's plugins_registry directory (watched for registration sockets)")
	stateDir := flag.String("state-dir", "", "where the DRA manager keeps its checkpoint")
	cdiDir := flag.String("cdi-dir", "/var/run/cdi", "CDI spec directory the plugin writes to")
	nodeName := flag.String("node", "", "the node the pod is bound to")
	namespace := flag.String("namespace", "default", "the pod's namespace")
	podName := flag.String("pod", "", "the pod whose claims are prepared")
	timeout := flag.Duration("timeout", 60*time.Second, "how long to wait for registration and each call")
	klog.InitFlags(nil)
	flag.Parse()
	if *kubeconfig == "" || *registry == "" || *stateDir == "" || *podName == "" || *nodeName == "" {
		fail("--kubeconfig, --plugins-registry, --state-dir, --node and --pod are required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fail("kubeconfig: %v", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fail("client: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = klog.NewContext(ctx, klog.Background())

	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(map[string]bool{string(features.ResourceHealthStatus): true}); err != nil {
		fail("feature gate %s: %v", features.ResourceHealthStatus, err)
	}
	mgr, err := dra.NewManager(klog.Background(), client, *stateDir)
	if err != nil {
		fail("dra.NewManager: %v", err)
	}
	getNode := func() (*v1.Node, error) {
		return client.CoreV1().Nodes().Get(ctx, *nodeName, metav1.GetOptions{})
	}
	getPod := func() *v1.Pod {
		pod, err := client.CoreV1().Pods(*namespace).Get(ctx, *podName, metav1.GetOptions{})
		if err != nil {
			fail("get pod %s/%s: %v", *namespace, *podName, err)
		}
		return pod
	}
	if err := mgr.Start(ctx, func() []*v1.Pod { return []*v1.Pod{getPod()} }, getNode, ready{}); err != nil {
		fail("dra manager start: %v", err)
	}
	reg := &registration{PluginHandler: mgr.GetWatcherHandler(), done: make(chan struct{})}
	pm := pluginmanager.NewPluginManager(*registry, record.NewFakeRecorder(100))
	pm.AddHandler("DRAPlugin", reg)
	stop := make(chan struct{})
	go pm.Run(ready{}, stop)
	select {
	case <-reg.done:
	case <-time.After(*timeout):
		fail("no DRA plugin registered through %s within %s", *registry, *timeout)
	}

	prepare := func() {
		pod := getPod()
		cctx, ccancel := context.WithTimeout(ctx, *timeout)
		defer ccancel()
		if err := mgr.PrepareResources(cctx, pod); err != nil {
			emit(map[string]any{"event": "prepareError", "error": err.Error()})
			return
		}
		var names []string
		for i := range pod.Spec.Containers {
			info, err := mgr.GetResources(pod, &pod.Spec.Containers[i])
			if err != nil {
				emit(map[string]any{"event": "prepareError", "error": "GetResources: " + err.Error()})
				return
			}
			for _, d := range info.CDIDevices {
				names = append(names, d.Name)
			}
		}
		// what a CDI-enabled runtime does with the names: resolve them in the spec dirs and edit
		// the container's OCI spec
		reg, err := cdi.NewCache(cdi.WithSpecDirs(*cdiDir), cdi.WithAutoRefresh(false))
		if err != nil {
			emit(map[string]any{"event": "prepareError", "error": "CDI cache: " + err.Error()})
			return
		}
		specErrs := map[string]string{}
		for path, errs := range reg.GetErrors() {
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			specErrs[path] = strings.Join(msgs, "; ")
		}
		spec := &oci.Spec{Process: &oci.Process{}, Linux: &oci.Linux{}}
		unresolved, err := reg.InjectDevices(spec, names...)
		res := map[string]any{"event": "prepared", "cdiDevices": names, "specErrors": specErrs}
		if err != nil {
			res["event"] = "prepareError"
			res["error"] = fmt.Sprintf("CDI injection: %v (unresolved %v)", err, unresolved)
		}
		res["oci"] = map[string]any{"mounts": spec.Mounts, "env": spec.Process.Env}
		emit(res)
	}
	unprepare := func() {
		pod := getPod()
		cctx, ccancel := context.WithTimeout(ctx, *timeout)
		defer ccancel()
		if err := mgr.UnprepareResources(cctx, pod); err != nil {
			emit(map[string]any{"event": "unprepareError", "error": err.Error()})
			return
		}
		emit(map[string]any{"event": "unprepared"})
	}

	health := func() {
		pod := getPod()
		status := &v1.PodStatus{}
		for _, c := range pod.Spec.Containers {
			status.ContainerStatuses = append(status.ContainerStatuses, v1.ContainerStatus{Name: c.Name})
		}
		mgr.UpdateAllocatedResourcesStatus(pod, status)
		var resources []map[string]any
		for _, cs := range status.ContainerStatuses {
			for _, rs := range cs.AllocatedResourcesStatus {
				for _, r := range rs.Resources {
					resources = append(resources, map[string]any{"container": cs.Name, "name": string(rs.Name), "resourceID": string(r.ResourceID), "health": string(r.Health)})
				}
			}
		}
		emit(map[string]any{"event": "health", "resources": resources})
	}

	prepare()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch strings.TrimSpace(in.Text()) {
		case "prepare":
			prepare()
		case "unprepare":
			unprepare()
		case "health":
			health()
		case "quit", "":
			close(stop)
			return
		default:
			emit(map[string]any{"event": "error", "error": "unknown command " + in.Text()})
		}
	}
	close(stop)
}
