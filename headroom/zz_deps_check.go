package headroom

import (
	_ "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	_ "github.com/kedacore/keda/v2/pkg/generated/clientset/versioned"
	_ "github.com/kedacore/keda/v2/pkg/generated/informers/externalversions"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "go.uber.org/zap"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/dynamic"
)
