package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	kedaclient "github.com/kedacore/keda/v2/pkg/generated/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gpu-headroom/gpu-headroom/headroom/controller"
)

// clusterFlags are the flags shared by the subcommands that read a cluster
// (plan, doctor), with headroomd's names and defaults so one can copy them.
type clusterFlags struct {
	kubeconfig, context, namespace, configMap string
	budget                                    int64
	timeout                                   time.Duration
	json                                      bool
}

func (f *clusterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig path (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&f.context, "context", "", "kubeconfig context (default: the current context)")
	fs.StringVar(&f.namespace, "namespace", "gpu-headroom", "headroomd's namespace (placeholders, ConfigMap, Lease)")
	fs.StringVar(&f.configMap, "config-map", "gpu-headroom", "name of the headroom ConfigMap (key config.yaml) in --namespace")
	fs.Int64Var(&f.budget, "budget-gpus", 0, "headroomd's --budget-gpus (default: read from the headroomd Deployment in --namespace)")
	fs.DurationVar(&f.timeout, "timeout", time.Minute, "give up reading the cluster after this long")
	fs.BoolVar(&f.json, "json", false, "write JSON instead of text")
}

// clients builds the Kubernetes and KEDA clients from the kubeconfig flags. The
// user agent names the subcommand, so audit logs show who read what.
func (f *clusterFlags) clients(sub string) (kubernetes.Interface, kedaclient.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: f.context}).ClientConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	rc.QPS, rc.Burst = 20, 40
	rc.UserAgent = "headroom-" + sub + "/" + version
	kube, err := kubernetes.NewForConfig(controller.Protobuf(rc))
	if err != nil {
		return nil, nil, fmt.Errorf("making kube client: %w", err)
	}
	kc, err := kedaclient.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("making KEDA client: %w", err)
	}
	return kube, kc, nil
}

// usageWithExample prints the flag defaults after a one-line synopsis and an
// example, as every cluster subcommand's --help does.
func usageWithExample(fs *flag.FlagSet, w io.Writer, synopsis, example string) func() {
	return func() {
		fmt.Fprintf(w, "usage: %s\n\nexample:\n  %s\n\nflags:\n", synopsis, example)
		fs.PrintDefaults()
	}
}
