/** @odoo-module **/
/**
 * <widget name="saas_live_reload"/>: a form whose record has an operation running
 * (an instance being provisioned, a template being built) reloads by itself when
 * the server says the operation moved on (bus notification "saas_manager.operation",
 * sent to the SaaS users' group by saas.operation._notify_progress).  A form with
 * unsaved changes is left alone.
 */
import { Component, onWillUnmount, xml } from "@odoo/owl";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { standardWidgetProps } from "@web/views/widgets/standard_widget_props";

const NOTIFICATION = "saas_manager.operation";

export class SaasLiveReload extends Component {
    static props = standardWidgetProps;
    static template = xml`<span class="d-none"/>`;

    setup() {
        this.bus = useService("bus_service");
        this.onOperation = this.onOperation.bind(this);
        this.bus.subscribe(NOTIFICATION, this.onOperation);
        onWillUnmount(() => this.bus.unsubscribe(NOTIFICATION, this.onOperation));
    }

    concerns(payload) {
        const record = this.props.record;
        if (record.resModel === "saas.operation") {
            return payload.operation_id === record.resId;
        }
        return payload.model === record.resModel && payload.id === record.resId;
    }

    async onOperation(payload) {
        const record = this.props.record;
        if (!this.concerns(payload) || (await record.isDirty())) {
            return;
        }
        await record.load();
    }
}

registry.category("view_widgets").add("saas_live_reload", { component: SaasLiveReload });
